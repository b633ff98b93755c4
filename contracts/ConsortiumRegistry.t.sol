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
