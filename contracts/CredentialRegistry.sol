// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";
import {ICredentialRegistry} from "./interfaces/ICredentialRegistry.sol";

/// @title CredentialRegistry
/// @notice Anchors of K-th Party credential ids (one id, or the Merkle root of a batch of ids)
/// and the issuers' status bit lists.
/// @dev A credential id is `keccak256` of the credential JWT's signing input; a batch root is
/// built as docs/registry.md describes (domain-separated leaves and nodes, sorted pairs). Status
/// lists are per issuer and packed 256 bits per storage word; a revocation bit can never be
/// cleared, a suspension bit can. Ids and roots share one anchor table: a root is never a
/// credential id (leaves are domain-separated).
contract CredentialRegistry is ICredentialRegistry {
    struct Anchor {
        address issuer;
        uint64 blockNumber;
    }

    IConsortiumRegistry private immutable _consortium;
    /// @dev Mirror of current membership, kept by the consortium (saves an external call per write).
    mapping(address account => bool) private _issuers;
    mapping(bytes32 credentialIdOrRoot => Anchor) private _anchors;
    mapping(address issuer => mapping(uint256 word => uint256 bits)) private _revoked;
    mapping(address issuer => mapping(uint256 word => uint256 bits)) private _suspended;

    modifier onlyMember() {
        if (!_issuers[msg.sender]) revert CredentialRegistryNotMember(msg.sender);
        _;
    }

    modifier onlyConsortium() {
        if (msg.sender != address(_consortium)) revert CredentialRegistryNotConsortium(msg.sender);
        _;
    }

    /// @param consortium_ The consortium whose members may anchor and change status.
    constructor(IConsortiumRegistry consortium_) {
        _consortium = consortium_;
    }

    /// @notice Records whether `account` may anchor and suspend (the consortium calls this on
    /// every admission and removal).
    /// @dev Requirements: the caller is the consortium contract.
    function setIssuer(address account, bool active) external onlyConsortium {
        _issuers[account] = active;
    }

    // ------------------------------------------------------------------ anchoring

    /// @notice Anchors `credentialId` with the caller as its issuer; the block of this
    /// transaction is the credential's trustworthy issuance time.
    /// @dev Requirements:
    /// - the caller is a current consortium member;
    /// - `credentialId` is non-zero and not anchored yet.
    ///
    /// Emits a {CredentialAnchored} event.
    function anchor(bytes32 credentialId) external onlyMember {
        _anchor(credentialId);
        emit CredentialAnchored(credentialId, msg.sender, block.number);
    }

    /// @notice Anchors the Merkle root of a batch of `count` credential ids with the caller as issuer.
    /// @dev Requirements:
    /// - the caller is a current consortium member;
    /// - `root` is non-zero and not anchored yet; `count` is positive.
    ///
    /// Emits a {BatchAnchored} event.
    function anchorBatch(bytes32 root, uint256 count) external onlyMember {
        if (count == 0) revert CredentialRegistryEmptyBatch();
        _anchor(root);
        emit BatchAnchored(root, msg.sender, count, block.number);
    }

    // ------------------------------------------------------------------ status, one index

    /// @notice Sets bit `index` of the caller's revocation list. Final: no function clears it.
    /// @dev Any account may revoke in its own list (a revocation only ever withdraws trust, and
    /// a removed member must still be able to revoke what it issued).
    /// Requirements:
    /// - the bit is not set yet.
    ///
    /// Emits a {CredentialRevoked} event.
    function revoke(uint256 index) external {
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

    // ------------------------------------------------------------------ status, batches

    /// @notice Sets the bits `indexes` of the caller's revocation list, one storage write per word.
    /// @dev Any account may revoke in its own list (see {revoke}).
    /// Requirements:
    /// - `indexes` is non-empty and strictly increasing;
    /// - none of the bits is set yet.
    ///
    /// Emits a {StatusWordChanged} event per word touched.
    function revokeBatch(uint256[] calldata indexes) external {
        _applyBatch(_revoked[msg.sender], msg.sender, indexes, true, true, false);
    }

    /// @notice Sets the bits `indexes` of the caller's suspension list, one storage write per word.
    /// @dev Requirements: as {revokeBatch}, on the suspension list.
    ///
    /// Emits a {StatusWordChanged} event per word touched.
    function suspendBatch(uint256[] calldata indexes) external onlyMember {
        _applyBatch(_suspended[msg.sender], msg.sender, indexes, false, true, false);
    }

    /// @notice Clears the bits `indexes` of the caller's suspension list, one storage write per word.
    /// @dev Requirements:
    /// - the caller is a current consortium member;
    /// - `indexes` is non-empty and strictly increasing;
    /// - every bit is set.
    ///
    /// Emits a {StatusWordChanged} event per word touched.
    function reinstateBatch(uint256[] calldata indexes) external onlyMember {
        _applyBatch(_suspended[msg.sender], msg.sender, indexes, false, false, false);
    }

    /// @notice Revokes credentials of `issuer` by index on the consortium's decision (a quorum
    /// executed a revocation proposal); bits already set are left as they are.
    /// @dev Requirements:
    /// - the caller is the consortium contract;
    /// - `indexes` is non-empty and strictly increasing.
    ///
    /// Emits a {StatusWordChanged} event per word where a bit was newly set.
    function consortiumRevoke(address issuer, uint256[] calldata indexes) external onlyConsortium {
        _applyBatch(_revoked[issuer], issuer, indexes, true, true, true);
    }

    // ------------------------------------------------------------------ views

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

    /// @notice Whether `account` is a current member (the consortium's mirror).
    function isIssuer(address account) external view returns (bool) {
        return _issuers[account];
    }

    /// @notice Word `word` of `issuer`'s revocation and suspension lists.
    function statusWords(address issuer, uint256 word) external view returns (uint256 revoked, uint256 suspended) {
        return (_revoked[issuer][word], _suspended[issuer][word]);
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
        state.issuerIsMember = _issuers[issuer];
        state.issuerWasMemberAtAnchor = a.issuer != address(0) && _consortium.wasMemberAt(issuer, a.blockNumber);
        state.revoked = isRevoked(issuer, revocationIndex);
        state.suspended = isSuspended(issuer, suspensionIndex);
    }

    // ------------------------------------------------------------------ internals

    function _anchor(bytes32 key) private {
        if (key == bytes32(0)) revert CredentialRegistryZeroCredentialId();
        Anchor storage existing = _anchors[key];
        if (existing.issuer != address(0)) {
            revert CredentialRegistryAlreadyAnchored(key, existing.issuer, existing.blockNumber);
        }
        _anchors[key] = Anchor({issuer: msg.sender, blockNumber: uint64(block.number)});
    }

    /// @dev Applies a sorted batch word by word. `set` sets bits (else clears them); `lenient`
    /// skips bits already in the target state instead of reverting.
    function _applyBatch(
        mapping(uint256 => uint256) storage list,
        address issuer,
        uint256[] calldata indexes,
        bool revocation,
        bool set,
        bool lenient
    ) private {
        uint256 n = indexes.length;
        if (n == 0) revert CredentialRegistryEmptyBatch();
        uint256 word = indexes[0] >> 8;
        uint256 mask;
        uint256 previous;
        for (uint256 i = 0; i < n; ++i) {
            uint256 index = indexes[i];
            if (i > 0 && index <= previous) revert CredentialRegistryUnsortedIndexes(previous, index);
            previous = index;
            if (index >> 8 != word) {
                _flushWord(list, issuer, word, mask, revocation, set, lenient);
                word = index >> 8;
                mask = 0;
            }
            mask |= 1 << (index & 0xff);
        }
        _flushWord(list, issuer, word, mask, revocation, set, lenient);
    }

    function _flushWord(
        mapping(uint256 => uint256) storage list,
        address issuer,
        uint256 word,
        uint256 mask,
        bool revocation,
        bool set,
        bool lenient
    ) private {
        uint256 bits = list[word];
        uint256 conflict = set ? bits & mask : ~bits & mask;
        if (conflict != 0) {
            if (!lenient) {
                uint256 index = (word << 8) + _lowestBit(conflict);
                if (!set) revert CredentialRegistryNotSuspended(issuer, index);
                if (revocation) revert CredentialRegistryAlreadyRevoked(issuer, index);
                revert CredentialRegistryAlreadySuspended(issuer, index);
            }
            mask &= ~conflict;
            if (mask == 0) return;
        }
        list[word] = set ? bits | mask : bits & ~mask;
        emit StatusWordChanged(issuer, revocation, word, mask, set);
    }

    function _lowestBit(uint256 x) private pure returns (uint256 i) {
        while (x & 1 == 0) {
            x >>= 1;
            ++i;
        }
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
