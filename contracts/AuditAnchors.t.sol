// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {AuditAnchors} from "./AuditAnchors.sol";
import {vm} from "./test/Vm.sol";

contract AuditAnchorsTest {
    AuditAnchors private anchors;
    bytes32 private constant LOG = keccak256("log");

    function setUp() public {
        anchors = new AuditAnchors();
    }

    function test_anchorsAndReadsBack() public {
        anchors.anchorHead(LOG, 5, bytes32(uint256(0xa5)));
        (uint64 seq, bytes32 head) = anchors.latestOf(address(this), LOG);
        require(seq == 5 && head == bytes32(uint256(0xa5)), "latest");
        require(anchors.anchorOf(address(this), LOG, 5) == bytes32(uint256(0xa5)), "anchorOf");
        require(anchors.anchorOf(address(this), LOG, 4) == bytes32(0), "unanchored seq reads zero");
    }

    function test_sameSeqReverts() public {
        anchors.anchorHead(LOG, 3, bytes32(uint256(1)));
        vm.expectRevert(abi.encodeWithSelector(AuditAnchors.AuditAnchorsSeqNotIncreasing.selector, LOG, uint64(3), uint64(3)));
        anchors.anchorHead(LOG, 3, bytes32(uint256(2)));
    }

    function test_lowerSeqReverts() public {
        anchors.anchorHead(LOG, 10, bytes32(uint256(1)));
        vm.expectRevert(abi.encodeWithSelector(AuditAnchors.AuditAnchorsSeqNotIncreasing.selector, LOG, uint64(10), uint64(9)));
        anchors.anchorHead(LOG, 9, bytes32(uint256(2)));
    }

    function test_seqZeroReverts() public {
        vm.expectRevert(abi.encodeWithSelector(AuditAnchors.AuditAnchorsSeqNotIncreasing.selector, LOG, uint64(0), uint64(0)));
        anchors.anchorHead(LOG, 0, bytes32(uint256(1)));
    }

    function test_zeroHeadReverts() public {
        vm.expectRevert(abi.encodeWithSelector(AuditAnchors.AuditAnchorsZeroHead.selector));
        anchors.anchorHead(LOG, 1, bytes32(0));
    }

    /// One account's anchors never touch another's, whatever the log id.
    function testFuzz_anchorsAreKeyedByAnchorer(address other, bytes32 log, uint64 seq, bytes32 head) public {
        vm.assume(other != address(this) && seq > 0 && head != bytes32(0));
        anchors.anchorHead(log, seq, head);
        vm.prank(other);
        anchors.anchorHead(log, 1, bytes32(uint256(7))); // the other's log starts afresh
        (uint64 mine, bytes32 myHead) = anchors.latestOf(address(this), log);
        require(mine == seq && myHead == head, "another anchorer changed my log");
        (uint64 theirs,) = anchors.latestOf(other, log);
        require(theirs == 1, "other anchorer's log");
    }

    /// An anchored head can never be overwritten, whatever comes after.
    function testFuzz_anchoredHeadIsFinal(uint64 first, uint64 second, bytes32 h1, bytes32 h2) public {
        vm.assume(first > 0 && h1 != bytes32(0) && h2 != bytes32(0));
        anchors.anchorHead(LOG, first, h1);
        if (second <= first) {
            vm.expectRevert(abi.encodeWithSelector(AuditAnchors.AuditAnchorsSeqNotIncreasing.selector, LOG, first, second));
        }
        anchors.anchorHead(LOG, second, h2);
        require(anchors.anchorOf(address(this), LOG, first) == h1, "anchored head overwritten");
    }
}

/// @dev What the invariant campaign may do: anchor arbitrary heads from a few accounts into a
/// few logs. Refused calls are swallowed; ghost variables remember every accepted anchor.
contract AuditAnchorsHandler {
    AuditAnchors public immutable anchors;
    address[] public accepted;
    bytes32[] public acceptedLogs;
    uint64[] public acceptedSeqs;
    bytes32[] public acceptedHeads;

    constructor(AuditAnchors anchors_) {
        anchors = anchors_;
    }

    function logAt(uint256 i) public pure returns (bytes32) {
        return keccak256(abi.encode("invariant log", i % 3));
    }

    function anchor(uint8 who, uint8 logSeed, uint64 seq, bytes32 head) external {
        address sender = address(uint160(0x1000 * (uint160(who % 3) + 1)));
        bytes32 log = logAt(logSeed);
        vm.prank(sender);
        try anchors.anchorHead(log, seq % 1000, head) {
            accepted.push(sender);
            acceptedLogs.push(log);
            acceptedSeqs.push(seq % 1000);
            acceptedHeads.push(head);
        } catch {}
    }

    function count() external view returns (uint256) {
        return accepted.length;
    }
}

contract AuditAnchorsInvariantTest {
    AuditAnchors private anchors;
    AuditAnchorsHandler private handler;

    function setUp() public {
        anchors = new AuditAnchors();
        handler = new AuditAnchorsHandler(anchors);
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// Every accepted anchor still reads back as it was written, and never above the latest.
    function invariant_anchorsAreFinal() public view {
        uint256 n = handler.count();
        for (uint256 i = 0; i < n; ++i) {
            address who = handler.accepted(i);
            bytes32 log = handler.acceptedLogs(i);
            uint64 seq = handler.acceptedSeqs(i);
            require(anchors.anchorOf(who, log, seq) == handler.acceptedHeads(i), "anchored head changed");
            (uint64 latest,) = anchors.latestOf(who, log);
            require(latest >= seq, "latest moved back");
        }
    }

    /// Accepted sequence numbers strictly increase per (anchorer, log).
    function invariant_seqStrictlyIncreasesPerLog() public view {
        uint256 n = handler.count();
        for (uint256 i = 0; i < n; ++i) {
            for (uint256 j = i + 1; j < n; ++j) {
                if (handler.accepted(i) == handler.accepted(j) && handler.acceptedLogs(i) == handler.acceptedLogs(j)) {
                    require(handler.acceptedSeqs(j) > handler.acceptedSeqs(i), "seq did not increase");
                }
            }
        }
    }
}
