// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ConsortiumRegistry} from "./ConsortiumRegistry.sol";
import {CredentialRegistry} from "./CredentialRegistry.sol";
import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";
import {vm} from "./test/Vm.sol";

/// Fuzzed governance sequences: the quorum stays within [1, members], approvals never exceed
/// members, nobody approves twice, membership history matches every admission and removal, and
/// the credential registry's membership mirror always equals the consortium's membership.
contract ConsortiumRegistryFuzzTest {
    ConsortiumRegistry private consortium;
    address[] private pool;

    function setUp() public {
        for (uint160 i = 1; i <= 6; ++i) pool.push(address(i * 0x1000));
        IConsortiumRegistry.MemberInit[] memory founders = new IConsortiumRegistry.MemberInit[](3);
        for (uint256 i = 0; i < 3; ++i) {
            founders[i] = IConsortiumRegistry.MemberInit({account: pool[i], did: "did:ethr:0x7a69:x", name: "m"});
        }
        consortium = new ConsortiumRegistry(founders, 2, 1 days);
    }

    function _checkInvariants() private view {
        uint256 n = consortium.memberCount();
        uint256 q = consortium.quorum();
        require(q >= 1 && q <= n, "quorum out of range");
        uint256 proposals = consortium.proposalCount();
        for (uint256 id = 0; id < proposals; ++id) {
            require(consortium.approvalCount(id) <= n, "approvals exceed members");
        }
        CredentialRegistry registry = CredentialRegistry(consortium.credentialRegistry());
        for (uint256 i = 0; i < pool.length; ++i) {
            require(registry.isIssuer(pool[i]) == consortium.isMember(pool[i]), "issuer mirror diverged");
        }
        address[] memory current = consortium.members();
        for (uint256 i = 0; i < current.length; ++i) {
            require(consortium.isMember(current[i]), "listed but not member");
            require(consortium.wasMemberAt(current[i], block.number), "member without open interval");
        }
    }

    /// Runs `steps` random governance actions by random members; every step keeps the invariants.
    function testFuzz_governanceInvariants(uint256 seed) public {
        for (uint256 step = 0; step < 12; ++step) {
            seed = uint256(keccak256(abi.encode(seed, step)));
            address[] memory current = consortium.members();
            address actor = current[seed % current.length];
            address target = pool[(seed >> 8) % pool.length];
            uint256 action = (seed >> 16) % 5;
            uint256 count = consortium.proposalCount();
            uint256 id = count == 0 ? 0 : (seed >> 32) % count;
            if (action == 0 && !consortium.isMember(target)) {
                vm.prank(actor);
                consortium.proposeAddMember(IConsortiumRegistry.MemberInit({account: target, did: "did:x", name: "n"}));
            } else if (action == 1 && consortium.isMember(target)) {
                vm.prank(actor);
                consortium.proposeRemoveMember(target);
            } else if (action == 2) {
                uint256 q = 1 + ((seed >> 24) % current.length);
                vm.prank(actor);
                consortium.proposeQuorum(q);
            } else if (action == 3 && count > 0) {
                (,,,, bool executed,,,,) = consortium.proposal(id);
                if (!executed && !consortium.hasApproved(id, actor)) {
                    vm.prank(actor);
                    consortium.approve(id);
                }
            } else if (action == 4 && count > 0) {
                vm.prank(actor);
                try consortium.execute(id) {} catch {}
            }
            vm.roll(block.number + 1);
            _checkInvariants();
        }
    }

    /// A member's approval counts only within its current membership: removed and re-admitted
    /// without a new vote, it has not approved (and execution lacks its approval); it may
    /// approve again, and then it counts.
    function testFuzz_approvalsDoNotSurviveRemoval(uint8 whoSeed) public {
        address b = pool[1 + (whoSeed % 2)];
        address c = b == pool[1] ? pool[2] : pool[1];
        vm.prank(pool[0]);
        uint256 pending = consortium.proposeQuorum(1); // pool[0]'s approval counts at once
        vm.prank(b);
        consortium.approve(pending);
        require(consortium.approvalCount(pending) == 2, "two approvals expected");
        vm.prank(pool[0]);
        _pass(consortium.proposeRemoveMember(b), c);
        require(consortium.approvalCount(pending) == 1, "removed member's approval counted");
        vm.prank(pool[0]);
        _pass(consortium.proposeAddMember(IConsortiumRegistry.MemberInit({account: b, did: "did:x", name: "b"})), c);
        require(consortium.isMember(b), "not re-admitted");
        require(!consortium.hasApproved(pending, b), "approval came back");
        require(consortium.approvalCount(pending) == 1, "approval came back in the count");
        vm.prank(pool[0]);
        vm.expectRevert(
            abi.encodeWithSelector(IConsortiumRegistry.ConsortiumRegistryQuorumNotReached.selector, pending, 1, 2)
        );
        consortium.execute(pending);
        vm.prank(b);
        consortium.approve(pending);
        require(consortium.approvalCount(pending) == 2, "a new approval does not count");
    }

    /// Has `other` (a current member) approve proposal `id` of pool[0] and executes it (quorum 2).
    function _pass(uint256 id, address other) private {
        vm.prank(other);
        consortium.approve(id);
        vm.prank(pool[0]);
        consortium.execute(id);
        vm.roll(block.number + 1);
    }

    /// After a key rotation, approvals sent with the previous key lapse; the previous key can
    /// neither propose nor approve, and the new one acts for the member.
    function testFuzz_rotationMovesGovernanceRights(address newOperator) public {
        vm.assume(newOperator != address(0) && newOperator != address(vm));
        for (uint256 i = 0; i < pool.length; ++i) vm.assume(newOperator != pool[i]);
        address b = pool[1];
        vm.prank(pool[0]);
        uint256 pending = consortium.proposeQuorum(1);
        vm.prank(b);
        consortium.approve(pending);
        vm.prank(b);
        uint256 rotation = consortium.proposeRotateKey(b, newOperator);
        _pass(rotation, pool[2]);
        require(consortium.operatorOf(b) == newOperator && consortium.memberByOperator(newOperator) == b, "not rotated");
        require(consortium.memberByOperator(b) == address(0), "old key still operates");
        require(consortium.approvalCount(pending) == 1, "approval of the previous key counted");
        vm.prank(b);
        vm.expectRevert(abi.encodeWithSelector(IConsortiumRegistry.ConsortiumRegistryNotMember.selector, b));
        consortium.approve(pending);
        vm.prank(newOperator);
        consortium.approve(pending);
        require(consortium.hasApproved(pending, b), "new key's approval is not the member's");
        require(consortium.approvalCount(pending) == 2, "new key's approval not counted");
    }

    /// No member approves one proposal twice.
    function testFuzz_noDoubleApproval(uint8 who) public {
        address member = pool[who % 3];
        vm.prank(pool[0]);
        uint256 id = consortium.proposeQuorum(3);
        if (member != pool[0]) {
            vm.prank(member);
            consortium.approve(id);
        }
        vm.prank(member);
        vm.expectRevert(abi.encodeWithSelector(IConsortiumRegistry.ConsortiumRegistryAlreadyApproved.selector, id, member));
        consortium.approve(id);
    }
}
