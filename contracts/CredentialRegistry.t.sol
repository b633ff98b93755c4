// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ConsortiumRegistry} from "./ConsortiumRegistry.sol";
import {CredentialRegistry} from "./CredentialRegistry.sol";
import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";
import {ICredentialRegistry} from "./interfaces/ICredentialRegistry.sol";
import {vm} from "./test/Vm.sol";

contract CredentialRegistryFuzzTest {
    ConsortiumRegistry private consortium;
    CredentialRegistry private registry;
    address private constant OUTSIDER = address(0xBAD);

    function setUp() public {
        IConsortiumRegistry.MemberInit[] memory founders = new IConsortiumRegistry.MemberInit[](1);
        founders[0] = IConsortiumRegistry.MemberInit({account: address(this), did: "did:ethr:0x7a69:test", name: "test"});
        consortium = new ConsortiumRegistry(founders, 1, 1 days);
        registry = CredentialRegistry(consortium.credentialRegistry());
    }

    /// A revoked bit stays set whatever the issuer does to its suspension list.
    function testFuzz_revocationIsFinal(uint256 index, uint256 other) public {
        registry.revoke(index);
        registry.suspend(other);
        registry.reinstate(other);
        require(registry.isRevoked(address(this), index), "revocation cleared");
        vm.expectRevert(abi.encodeWithSelector(ICredentialRegistry.CredentialRegistryAlreadyRevoked.selector, address(this), index));
        registry.revoke(index);
    }

    /// Setting one bit changes no other bit, in either list.
    function testFuzz_bitsAreIndependent(uint256 index, uint256 other) public {
        vm.assume(index != other);
        registry.revoke(index);
        registry.suspend(index);
        require(!registry.isRevoked(address(this), other), "neighbour revoked");
        require(!registry.isSuspended(address(this), other), "neighbour suspended");
        registry.reinstate(index);
        require(!registry.isSuspended(address(this), index), "suspension not cleared");
        require(registry.isRevoked(address(this), index), "revocation cleared by reinstate");
    }

    /// Lists are per issuer: an index set by one issuer is clear for every other address.
    function testFuzz_listsArePerIssuer(uint256 index, address someoneElse) public {
        vm.assume(someoneElse != address(this));
        registry.revoke(index);
        require(!registry.isRevoked(someoneElse, index), "other issuer's list changed");
    }

    /// A batch sets exactly its bits, and a second batch over any of them reverts.
    function testFuzz_batchSetsExactlyItsBits(uint16 start, uint8 length, uint16 probe) public {
        uint256 n = uint256(length) + 1;
        uint256[] memory indexes = new uint256[](n);
        for (uint256 i = 0; i < n; ++i) indexes[i] = uint256(start) + 2 * i;
        registry.revokeBatch(indexes);
        uint256 p = uint256(probe);
        bool expected = p >= start && p < uint256(start) + 2 * n && (p - start) % 2 == 0;
        require(registry.isRevoked(address(this), p) == expected, "batch bit mismatch");
        vm.expectRevert(
            abi.encodeWithSelector(ICredentialRegistry.CredentialRegistryAlreadyRevoked.selector, address(this), indexes[0])
        );
        registry.revokeBatch(indexes);
    }

    /// Reinstating a batch never touches the revocation list.
    function testFuzz_reinstateBatchKeepsRevocations(uint16 index) public {
        uint256[] memory one = new uint256[](1);
        one[0] = index;
        registry.revokeBatch(one);
        registry.suspendBatch(one);
        registry.reinstateBatch(one);
        require(registry.isRevoked(address(this), index), "revocation cleared");
        require(!registry.isSuspended(address(this), index), "suspension kept");
    }

    /// Only current members anchor, and an anchor records its issuer and block.
    function testFuzz_onlyMembersAnchor(bytes32 credentialId, address caller) public {
        vm.assume(credentialId != bytes32(0));
        vm.assume(caller != address(this));
        vm.prank(caller);
        vm.expectRevert(abi.encodeWithSelector(ICredentialRegistry.CredentialRegistryNotMember.selector, caller));
        registry.anchor(credentialId);
        registry.anchor(credentialId);
        (bool anchored, uint256 blockNumber) = registry.anchorOf(address(this), credentialId);
        require(anchored && blockNumber == block.number, "anchor not recorded");
        (anchored, blockNumber) = registry.anchorOf(caller, credentialId);
        require(!anchored && blockNumber == 0, "anchor recorded for another account");
    }

    /// Admits `account` (quorum 1: this contract's proposal executes at once).
    function _admit(address account) private {
        uint256 id = consortium.proposeAddMember(IConsortiumRegistry.MemberInit({account: account, did: "did:x", name: "n"}));
        consortium.execute(id);
    }

    /// For any two distinct members and any key (id or root): anchoring by one never changes the
    /// other's anchor, neither blocks the other, and each re-anchoring reverts with its own anchor.
    function testFuzz_anchorsBelongToTheirIssuer(address first, address second, bytes32 key, bool batch) public {
        vm.assume(key != bytes32(0));
        vm.assume(first != address(0) && second != address(0) && first != second);
        vm.assume(first != address(this) && second != address(this));
        vm.assume(first != address(vm) && second != address(vm));
        _admit(first);
        _admit(second);
        vm.prank(first);
        if (batch) registry.anchorBatch(key, 3);
        else registry.anchor(key);
        uint256 firstBlock = block.number;
        (bool anchored, uint256 at) = registry.anchorOf(second, key);
        require(!anchored && at == 0, "first's anchor shows as second's");
        ICredentialRegistry.CredentialState memory state = registry.credentialState(key, second, 0, 0);
        require(state.anchoredBy == address(0) && state.anchoredAt == 0, "state counts another issuer's anchor");
        vm.roll(block.number + 5);
        vm.prank(second);
        registry.anchor(key);
        (anchored, at) = registry.anchorOf(first, key);
        require(anchored && at == firstBlock, "second's anchor changed first's");
        (anchored, at) = registry.anchorOf(second, key);
        require(anchored && at == firstBlock + 5, "second's anchor not recorded");
        state = registry.credentialState(key, second, 0, 0);
        require(state.anchoredBy == second && state.anchoredAt == firstBlock + 5, "state is not second's anchor");
        require(state.issuerIsMember && state.issuerWasMemberAtAnchor, "second's membership misread");
        vm.prank(first);
        vm.expectRevert(
            abi.encodeWithSelector(ICredentialRegistry.CredentialRegistryAlreadyAnchored.selector, key, first, firstBlock)
        );
        registry.anchor(key);
    }

    /// After a key rotation the new operating account anchors, suspends and revokes for the
    /// member (in the member's table and lists); the member's previous key can do none of it.
    function testFuzz_rotatedKeyCarriesTheMembersRights(address newOperator, bytes32 key, uint16 index) public {
        vm.assume(key != bytes32(0));
        vm.assume(newOperator != address(0) && newOperator != address(this) && newOperator != address(vm));
        registry.anchor(key);
        uint256 anchoredAt = block.number;
        uint256 id = consortium.proposeRotateKey(address(this), newOperator);
        consortium.execute(id);
        vm.roll(block.number + 1);
        vm.expectRevert(abi.encodeWithSelector(ICredentialRegistry.CredentialRegistryNotMember.selector, address(this)));
        registry.suspend(index);
        vm.expectRevert(
            abi.encodeWithSelector(ICredentialRegistry.CredentialRegistryKeyRotated.selector, address(this), newOperator)
        );
        registry.revoke(index);
        vm.prank(newOperator);
        vm.expectRevert(
            abi.encodeWithSelector(
                ICredentialRegistry.CredentialRegistryAlreadyAnchored.selector, key, address(this), anchoredAt
            )
        );
        registry.anchor(key);
        vm.prank(newOperator);
        registry.suspend(index);
        vm.prank(newOperator);
        registry.revoke(index);
        require(registry.isSuspended(address(this), index), "suspension not in the member's list");
        require(registry.isRevoked(address(this), index), "revocation not in the member's list");
        require(!registry.isRevoked(newOperator, index), "revocation in the operator's own list");
        ICredentialRegistry.CredentialState memory state = registry.credentialState(key, address(this), index, index);
        require(state.anchoredBy == address(this) && state.anchoredAt == anchoredAt, "anchor lost in the rotation");
    }

    /// Only the consortium contract may revoke another issuer's credentials.
    function testFuzz_onlyConsortiumRevokesOthers(address caller, uint256 index) public {
        vm.assume(caller != address(consortium));
        uint256[] memory one = new uint256[](1);
        one[0] = index;
        vm.prank(caller);
        vm.expectRevert(abi.encodeWithSelector(ICredentialRegistry.CredentialRegistryNotConsortium.selector, caller));
        registry.consortiumRevoke(address(this), one);
    }

    /// Membership history answers for every block since admission, and for none before.
    function testFuzz_wasMemberAt(uint64 later) public view {
        uint256 admitted = block.number;
        require(consortium.wasMemberAt(address(this), admitted + later), "member after admission");
        if (admitted > 0) require(!consortium.wasMemberAt(address(this), admitted - 1), "member before admission");
        require(!consortium.wasMemberAt(OUTSIDER, admitted + later), "outsider was member");
    }
}
