// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ConsortiumRegistry} from "./ConsortiumRegistry.sol";
import {CredentialRegistry} from "./CredentialRegistry.sol";
import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";
import {vm} from "./test/Vm.sol";

/// @dev What the invariant campaign may do: governance and status calls by pool accounts, with
/// arbitrary (bounded) arguments, and time passing. Calls the contracts refuse are swallowed:
/// the invariants must hold whatever sequence the fuzzer finds. Ghost variables record what
/// must never be undone.
contract RegistryHandler {
    ConsortiumRegistry public immutable consortium;
    CredentialRegistry public immutable registry;
    address[] private _pool;
    /// Every (issuer, index) ever revoked.
    address[] public revokedIssuers;
    uint256[] public revokedIndexes;
    /// Block of every successful anchor, by (issuer, key): the keys are few, so members collide.
    mapping(address issuer => mapping(bytes32 key => uint256 blockNumber)) public anchoredAt;
    uint256 public constant KEYS = 3;
    uint256 public calls;

    constructor(ConsortiumRegistry consortium_, address[] memory pool_) {
        consortium = consortium_;
        registry = CredentialRegistry(consortium_.credentialRegistry());
        _pool = pool_;
    }

    function pool() external view returns (address[] memory) {
        return _pool;
    }

    function _actor(uint256 seed) private view returns (address) {
        return _pool[seed % _pool.length];
    }

    function proposeAdd(uint256 actorSeed, uint256 targetSeed) external {
        ++calls;
        vm.prank(_actor(actorSeed));
        try consortium.proposeAddMember(
            IConsortiumRegistry.MemberInit({account: _actor(targetSeed), did: "did:ethr:0x7a69:x", name: "n"})
        ) {} catch {}
    }

    function proposeRemove(uint256 actorSeed, uint256 targetSeed) external {
        ++calls;
        vm.prank(_actor(actorSeed));
        try consortium.proposeRemoveMember(_actor(targetSeed)) {} catch {}
    }

    function proposeQuorum(uint256 actorSeed, uint8 quorum) external {
        ++calls;
        vm.prank(_actor(actorSeed));
        try consortium.proposeQuorum(quorum % 8) {} catch {}
    }

    function approve(uint256 actorSeed, uint256 idSeed) external {
        ++calls;
        uint256 count = consortium.proposalCount();
        if (count == 0) return;
        vm.prank(_actor(actorSeed));
        try consortium.approve(idSeed % count) {} catch {}
    }

    function execute(uint256 actorSeed, uint256 idSeed) external {
        ++calls;
        uint256 count = consortium.proposalCount();
        if (count == 0) return;
        vm.prank(_actor(actorSeed));
        try consortium.execute(idSeed % count) {} catch {}
    }

    function revoke(uint256 actorSeed, uint16 index) external {
        ++calls;
        address actor = _actor(actorSeed);
        // an operating account revokes in its member's list (removed or not), others in their own
        address issuer = consortium.memberByOperator(actor);
        if (issuer == address(0)) issuer = actor;
        vm.prank(actor);
        try registry.revoke(index) {
            revokedIssuers.push(issuer);
            revokedIndexes.push(index);
        } catch {}
    }

    function suspend(uint256 actorSeed, uint16 index) external {
        ++calls;
        vm.prank(_actor(actorSeed));
        try registry.suspend(index) {} catch {}
    }

    function reinstate(uint256 actorSeed, uint16 index) external {
        ++calls;
        vm.prank(_actor(actorSeed));
        try registry.reinstate(index) {} catch {}
    }

    function anchor(uint256 actorSeed, uint256 keySeed, bool batch) external {
        ++calls;
        address actor = _actor(actorSeed);
        bytes32 key = keyAt(keySeed % KEYS);
        address issuer = consortium.memberByOperator(actor);
        vm.prank(actor);
        if (batch) {
            try registry.anchorBatch(key, 2) {
                anchoredAt[issuer][key] = block.number;
            } catch {}
        } else {
            try registry.anchor(key) {
                anchoredAt[issuer][key] = block.number;
            } catch {}
        }
    }

    function proposeRotation(uint256 actorSeed, uint256 memberSeed, uint256 operatorSeed) external {
        ++calls;
        vm.prank(_actor(actorSeed));
        try consortium.proposeRotateKey(_actor(memberSeed), _actor(operatorSeed)) {} catch {}
    }

    function keyAt(uint256 i) public pure returns (bytes32) {
        return keccak256(abi.encode("invariant key", i));
    }

    function pass(uint16 blocks, uint32 seconds_) external {
        ++calls;
        vm.roll(block.number + 1 + blocks);
        vm.warp(block.timestamp + seconds_);
    }

    function revokedCount() external view returns (uint256) {
        return revokedIndexes.length;
    }
}

/// Invariant campaign (Hardhat's Solidity test runner calls the handler's functions in random
/// sequences and checks every `invariant_` function after each call).
contract RegistryInvariantTest {
    ConsortiumRegistry private consortium;
    CredentialRegistry private registry;
    RegistryHandler private handler;

    function setUp() public {
        address[] memory pool = new address[](8);
        for (uint160 i = 0; i < 8; ++i) pool[i] = address((i + 1) * 0x1000);
        IConsortiumRegistry.MemberInit[] memory founders = new IConsortiumRegistry.MemberInit[](3);
        for (uint256 i = 0; i < 3; ++i) {
            founders[i] = IConsortiumRegistry.MemberInit({account: pool[i], did: "did:ethr:0x7a69:x", name: "m"});
        }
        consortium = new ConsortiumRegistry(founders, 2, 1 days);
        registry = CredentialRegistry(consortium.credentialRegistry());
        handler = new RegistryHandler(consortium, pool);
    }

    /// Only the handler is called by the campaign.
    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function invariant_quorumWithinMembers() public view {
        uint256 n = consortium.memberCount();
        uint256 q = consortium.quorum();
        require(n >= 1, "no members left");
        require(q >= 1 && q <= n, "quorum out of range");
    }

    function invariant_approvalsNeverExceedMembers() public view {
        uint256 n = consortium.memberCount();
        uint256 count = consortium.proposalCount();
        for (uint256 id = 0; id < count; ++id) {
            require(consortium.approvalCount(id) <= n, "approvals exceed members");
        }
    }

    function invariant_issuerMirrorEqualsMembership() public view {
        address[] memory pool = handler.pool();
        for (uint256 i = 0; i < pool.length; ++i) {
            require(registry.isIssuer(pool[i]) == consortium.isMember(pool[i]), "issuer mirror diverged");
            address member = consortium.memberByOperator(pool[i]);
            (address mirrored, bool active) = registry.memberByOperator(pool[i]);
            require(mirrored == member, "operator mirror diverged");
            require(active == (member != address(0) && consortium.isMember(member)), "operator activity diverged");
            address operator = consortium.operatorOf(pool[i]);
            require(operator == address(0) || consortium.memberByOperator(operator) == pool[i], "operator maps elsewhere");
        }
    }

    /// Every anchor stays its issuer's, at its block, and no member sees an anchor it did not make.
    function invariant_anchorsBelongToTheirIssuer() public view {
        address[] memory pool = handler.pool();
        for (uint256 i = 0; i < pool.length; ++i) {
            for (uint256 k = 0; k < handler.KEYS(); ++k) {
                bytes32 key = handler.keyAt(k);
                (bool anchored, uint256 blockNumber) = registry.anchorOf(pool[i], key);
                uint256 expected = handler.anchoredAt(pool[i], key);
                require(anchored == (expected != 0) && blockNumber == expected, "an anchor moved between issuers");
            }
        }
    }

    function invariant_membersHaveOpenInterval() public view {
        address[] memory current = consortium.members();
        require(current.length == consortium.memberCount(), "member list and count differ");
        for (uint256 i = 0; i < current.length; ++i) {
            require(consortium.isMember(current[i]), "listed but not a member");
            require(consortium.wasMemberAt(current[i], block.number), "member without an open interval");
        }
    }

    function invariant_revocationIsFinal() public view {
        uint256 n = handler.revokedCount();
        for (uint256 i = 0; i < n; ++i) {
            require(registry.isRevoked(handler.revokedIssuers(i), handler.revokedIndexes(i)), "a revocation was undone");
        }
    }
}
