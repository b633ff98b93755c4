// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";
import {ICredentialRegistry} from "./interfaces/ICredentialRegistry.sol";

/// @title CredentialRegistry
/// @notice Anchors of K-th Party credential ids and their issuers' status bit lists.
/// @dev A credential id is `keccak256` of the credential JWT's signing input. Status
/// lists are per issuer and packed 256 bits per storage word; a revocation bit can
/// never be cleared, a suspension bit can.
contract CredentialRegistry is ICredentialRegistry {
    struct Anchor {
        address issuer;
        uint64 blockNumber;
    }

    IConsortiumRegistry private immutable _consortium;
    mapping(bytes32 credentialId => Anchor) private _anchors;
    mapping(address issuer => mapping(uint256 word => uint256 bits)) private _revoked;
    mapping(address issuer => mapping(uint256 word => uint256 bits)) private _suspended;

    modifier onlyMember() {
        if (!_consortium.isMember(msg.sender)) revert CredentialRegistryNotMember(msg.sender);
        _;
    }

    /// @param consortium_ The consortium whose members may anchor and change status.
    constructor(IConsortiumRegistry consortium_) {
        _consortium = consortium_;
    }

    /// @notice Anchors `credentialId` with the caller as its issuer; the block of this
    /// transaction is the credential's trustworthy issuance time.
    /// @dev Requirements:
    /// - the caller is a current consortium member;
    /// - `credentialId` is non-zero and not anchored yet.
    ///
    /// Emits a {CredentialAnchored} event.
    function anchor(bytes32 credentialId) external onlyMember {
        if (credentialId == bytes32(0)) revert CredentialRegistryZeroCredentialId();
        Anchor storage existing = _anchors[credentialId];
        if (existing.issuer != address(0)) {
            revert CredentialRegistryAlreadyAnchored(credentialId, existing.issuer, existing.blockNumber);
        }
        _anchors[credentialId] = Anchor({issuer: msg.sender, blockNumber: uint64(block.number)});
        emit CredentialAnchored(credentialId, msg.sender, block.number);
    }

    /// @notice Sets bit `index` of the caller's revocation list. Final: no function clears it.
    /// @dev Requirements:
    /// - the caller is a current consortium member;
    /// - the bit is not set yet.
    ///
    /// Emits a {CredentialRevoked} event.
    function revoke(uint256 index) external onlyMember {
        if (!_setBit(_revoked[msg.sender], index)) revert CredentialRegistryAlreadyRevoked(msg.sender, index);
        emit CredentialRevoked(msg.sender, index);
    }

    /// @notice Sets bit `index` of the caller's suspension list.
    /// @dev Requirements:
    /// - the caller is a current consortium member;
    /// - the bit is not set yet.
    ///
    /// Emits a {CredentialSuspended} event.
    function suspend(uint256 index) external onlyMember {
        if (!_setBit(_suspended[msg.sender], index)) revert CredentialRegistryAlreadySuspended(msg.sender, index);
        emit CredentialSuspended(msg.sender, index);
    }

    /// @notice Clears bit `index` of the caller's suspension list.
    /// @dev Requirements:
    /// - the caller is a current consortium member;
    /// - the bit is set.
    ///
    /// Emits a {CredentialReinstated} event.
    function reinstate(uint256 index) external onlyMember {
        mapping(uint256 => uint256) storage list = _suspended[msg.sender];
        uint256 mask = 1 << (index & 0xff);
        uint256 bits = list[index >> 8];
        if (bits & mask == 0) revert CredentialRegistryNotSuspended(msg.sender, index);
        list[index >> 8] = bits & ~mask;
        emit CredentialReinstated(msg.sender, index);
    }

    /// @inheritdoc ICredentialRegistry
    function consortium() external view returns (address) {
        return address(_consortium);
    }

    /// @inheritdoc ICredentialRegistry
    function anchorOf(bytes32 credentialId) external view returns (address issuer, uint256 blockNumber) {
        Anchor storage a = _anchors[credentialId];
        return (a.issuer, a.blockNumber);
    }

    /// @inheritdoc ICredentialRegistry
    function isRevoked(address issuer, uint256 index) public view returns (bool) {
        return _getBit(_revoked[issuer], index);
    }

    /// @inheritdoc ICredentialRegistry
    function isSuspended(address issuer, uint256 index) public view returns (bool) {
        return _getBit(_suspended[issuer], index);
    }

    /// @inheritdoc ICredentialRegistry
    function credentialState(bytes32 credentialId, address issuer, uint256 revocationIndex, uint256 suspensionIndex)
        external
        view
        returns (CredentialState memory state)
    {
        Anchor storage a = _anchors[credentialId];
        state.anchoredBy = a.issuer;
        state.anchoredAt = a.blockNumber;
        state.issuerIsMember = _consortium.isMember(issuer);
        state.revoked = isRevoked(issuer, revocationIndex);
        state.suspended = isSuspended(issuer, suspensionIndex);
    }

    /// @dev Sets the bit and returns true, or returns false if it was already set.
    function _setBit(mapping(uint256 => uint256) storage list, uint256 index) private returns (bool) {
        uint256 mask = 1 << (index & 0xff);
        uint256 bits = list[index >> 8];
        if (bits & mask != 0) return false;
        list[index >> 8] = bits | mask;
        return true;
    }

    function _getBit(mapping(uint256 => uint256) storage list, uint256 index) private view returns (bool) {
        return list[index >> 8] & (1 << (index & 0xff)) != 0;
    }
}
