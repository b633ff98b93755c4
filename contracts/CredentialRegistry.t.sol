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
        consortium = new ConsortiumRegistry(founders, 1);
        registry = new CredentialRegistry(consortium);
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

    /// Only current members anchor, and an anchor records its issuer and block.
    function testFuzz_onlyMembersAnchor(bytes32 credentialId, address caller) public {
        vm.assume(credentialId != bytes32(0));
        vm.assume(caller != address(this));
        vm.prank(caller);
        vm.expectRevert(abi.encodeWithSelector(ICredentialRegistry.CredentialRegistryNotMember.selector, caller));
        registry.anchor(credentialId);
        registry.anchor(credentialId);
        (address issuer, uint256 blockNumber) = registry.anchorOf(credentialId);
        require(issuer == address(this) && blockNumber == block.number, "anchor not recorded");
    }

    /// Membership history answers for every block since admission, and for none before.
    function testFuzz_wasMemberAt(uint64 later) public view {
        uint256 admitted = block.number;
        require(consortium.wasMemberAt(address(this), admitted + later), "member after admission");
        if (admitted > 0) require(!consortium.wasMemberAt(address(this), admitted - 1), "member before admission");
        require(!consortium.wasMemberAt(OUTSIDER, admitted + later), "outsider was member");
    }
}
