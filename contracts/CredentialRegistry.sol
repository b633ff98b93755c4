// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";
import {ICredentialRegistry} from "./interfaces/ICredentialRegistry.sol";

/// @title CredentialRegistry
/// @notice Anchors of K-th Party credential ids (one id, or the Merkle root of a batch of ids),
/// per issuer, and the issuers' status bit lists.
/// @dev A credential id is `keccak256` of the credential JWT's signing input; a batch root is
/// built as docs/registry.md describes (domain-separated leaves and nodes, sorted pairs). Anchors
/// are keyed by (issuer, id or root): each member has its own anchor table, so no member can
/// pre-empt or block another's anchor, and a verifier looks a credential up under the issuer it
/// names. Ids and roots share an issuer's table: a root is never a credential id (leaves are
/// domain-separated). Status lists are per issuer and packed 256 bits per storage word; a
/// revocation bit can never be cleared, a suspension bit can.
///
/// The issuer is the member's account (the address of its DID); the caller is its operating
/// account, which the consortium changes only on a key rotation its quorum executed. The
/// consortium mirrors both here (saves an external call per write).
contract CredentialRegistry is ICredentialRegistry {
    /// @dev Who an operating account acts for, and whether that member is a member now (one slot).
    struct Operator {
        address member;
        bool active;
    }

    IConsortiumRegistry private immutable _consortium;
    mapping(address member => bool) private _issuers;
    mapping(address member => address operator) private _operatorOf;
    mapping(address operator => Operator) private _operators;
    mapping(address issuer => mapping(bytes32 key => uint256 blockNumber)) private _anchors;
    mapping(address issuer => mapping(uint256 word => uint256 bits)) private _revoked;
    mapping(address issuer => mapping(uint256 word => uint256 bits)) private _suspended;

    modifier onlyConsortium() {
        if (msg.sender != address(_consortium)) revert CredentialRegistryNotConsortium(msg.sender);
        _;
    }

    /// @param consortium_ The consortium whose members may anchor and change status.
    constructor(IConsortiumRegistry consortium_) {
        _consortium = consortium_;
    }

    /// @notice Records whether `member` may anchor and suspend (the consortium calls this on
    /// every admission and removal).
    /// @dev Requirements: the caller is the consortium contract.
    function setIssuer(address member, bool active) external onlyConsortium {
        _issuers[member] = active;
        address operator = _operatorOf[member];
        if (operator != address(0)) _operators[operator].active = active;
    }

    /// @notice Records that `member` acts through `operator` from now on; its previous operating
    /// account loses every right (the consortium calls this on first admission and on a key rotation).
    /// @dev Requirements: the caller is the consortium contract.
    function setOperator(address member, address operator) external onlyConsortium {
        address previous = _operatorOf[member];
        if (previous != address(0)) delete _operators[previous];
        _operatorOf[member] = operator;
        _operators[operator] = Operator({member: member, active: _issuers[member]});
    }

    // ------------------------------------------------------------------ anchoring

    /// @notice Anchors `credentialId` with the caller's member as its issuer; the block of this
    /// transaction is the credential's trustworthy issuance time. Anchors of the same id by
    /// other members neither block nor count for it.
    /// @dev Requirements:
    /// - the caller is the operating account of a current consortium member;
    /// - `credentialId` is non-zero and not anchored by that member yet.
    ///
    /// Emits a {CredentialAnchored} event.
    function anchor(bytes32 credentialId) external {
        address issuer = _anchor(credentialId);
        emit CredentialAnchored(credentialId, issuer, block.number);
    }

    /// @notice Anchors the Merkle root of a batch of `count` credential ids with the caller's
    /// member as issuer.
    /// @dev Requirements:
    /// - the caller is the operating account of a current consortium member;
    /// - `root` is non-zero and not anchored by that member yet; `count` is positive.
    ///
    /// Emits a {BatchAnchored} event.
    function anchorBatch(bytes32 root, uint256 count) external {
        address issuer = _anchor(root);
        if (count == 0) revert CredentialRegistryEmptyBatch();
        emit BatchAnchored(root, issuer, count, block.number);
    }

    // ------------------------------------------------------------------ status, one index

    /// @notice Sets bit `index` of the caller's revocation list (its member's, if the caller is
    /// a member's operating account). Final: no function clears it.
    /// @dev Any account may revoke in its own list (a revocation only ever withdraws trust, and
    /// a removed member must still be able to revoke what it issued).
    /// Requirements:
    /// - the caller is not a member account whose key was rotated to another operating account;
    /// - the bit is not set yet.
    ///
    /// Emits a {CredentialRevoked} event.
    function revoke(uint256 index) external {
        address issuer = _listOwner();
        if (!_setBit(_revoked[issuer], index)) revert CredentialRegistryAlreadyRevoked(issuer, index);
        emit CredentialRevoked(issuer, index);
    }

    /// @notice Sets bit `index` of the caller's member's suspension list.
    /// @dev Requirements:
    /// - the caller is the operating account of a current consortium member;
    /// - the bit is not set yet.
    ///
    /// Emits a {CredentialSuspended} event.
    function suspend(uint256 index) external {
        address issuer = _activeMember();
        if (!_setBit(_suspended[issuer], index)) revert CredentialRegistryAlreadySuspended(issuer, index);
        emit CredentialSuspended(issuer, index);
    }

    /// @notice Clears bit `index` of the caller's member's suspension list.
    /// @dev Requirements:
    /// - the caller is the operating account of a current consortium member;
    /// - the bit is set.
    ///
    /// Emits a {CredentialReinstated} event.
    function reinstate(uint256 index) external {
        address issuer = _activeMember();
        mapping(uint256 => uint256) storage list = _suspended[issuer];
        uint256 mask = 1 << (index & 0xff);
        uint256 bits = list[index >> 8];
        if (bits & mask == 0) revert CredentialRegistryNotSuspended(issuer, index);
        list[index >> 8] = bits & ~mask;
        emit CredentialReinstated(issuer, index);
    }

    // ------------------------------------------------------------------ status, batches

    /// @notice Sets the bits `indexes` of the caller's revocation list (its member's, if the
    /// caller is a member's operating account), one storage write per word.
    /// @dev Any account may revoke in its own list (see {revoke}).
    /// Requirements:
    /// - the caller is not a member account whose key was rotated to another operating account;
    /// - `indexes` is non-empty and strictly increasing;
    /// - none of the bits is set yet.
    ///
    /// Emits a {StatusWordChanged} event per word touched.
    function revokeBatch(uint256[] calldata indexes) external {
        address issuer = _listOwner();
        _applyBatch(_revoked[issuer], issuer, indexes, true, true, false);
    }

    /// @notice Sets the bits `indexes` of the caller's member's suspension list, one storage write per word.
    /// @dev Requirements:
    /// - the caller is the operating account of a current consortium member;
    /// - `indexes` is non-empty and strictly increasing;
    /// - none of the bits is set yet.
    ///
    /// Emits a {StatusWordChanged} event per word touched.
    function suspendBatch(uint256[] calldata indexes) external {
        address issuer = _activeMember();
        _applyBatch(_suspended[issuer], issuer, indexes, false, true, false);
    }

    /// @notice Clears the bits `indexes` of the caller's member's suspension list, one storage write per word.
    /// @dev Requirements:
    /// - the caller is the operating account of a current consortium member;
    /// - `indexes` is non-empty and strictly increasing;
    /// - every bit is set.
    ///
    /// Emits a {StatusWordChanged} event per word touched.
    function reinstateBatch(uint256[] calldata indexes) external {
        address issuer = _activeMember();
        _applyBatch(_suspended[issuer], issuer, indexes, false, false, false);
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
    function anchorOf(address issuer, bytes32 key) external view returns (bool anchored, uint256 blockNumber) {
        blockNumber = _anchors[issuer][key];
        anchored = blockNumber != 0;
    }

    /// @inheritdoc ICredentialRegistry
    function isRevoked(address issuer, uint256 index) public view returns (bool) {
        return _getBit(_revoked[issuer], index);
    }

    /// @inheritdoc ICredentialRegistry
    function isSuspended(address issuer, uint256 index) public view returns (bool) {
        return _getBit(_suspended[issuer], index);
    }

    /// @notice Whether `member` is a current member (the consortium's mirror).
    function isIssuer(address member) external view returns (bool) {
        return _issuers[member];
    }

    /// @notice The member that `operator` acts for (zero if none), and whether it is a member now
    /// (the consortium's mirror).
    function memberByOperator(address operator) external view returns (address member, bool active) {
        Operator storage o = _operators[operator];
        return (o.member, o.active);
    }

    /// @notice Word `word` of `issuer`'s revocation and suspension lists.
    function statusWords(address issuer, uint256 word) external view returns (uint256 revoked, uint256 suspended) {
        return (_revoked[issuer][word], _suspended[issuer][word]);
    }

    /// @inheritdoc ICredentialRegistry
    function credentialState(bytes32 key, address issuer, uint256 revocationIndex, uint256 suspensionIndex)
        external
        view
        returns (CredentialState memory state)
    {
        uint256 anchoredAt = _anchors[issuer][key];
        if (anchoredAt != 0) {
            state.anchoredBy = issuer;
            state.anchoredAt = anchoredAt;
            state.issuerWasMemberAtAnchor = _consortium.wasMemberAt(issuer, anchoredAt);
        }
        state.issuerIsMember = _issuers[issuer];
        state.revoked = isRevoked(issuer, revocationIndex);
        state.suspended = isSuspended(issuer, suspensionIndex);
    }

    // ------------------------------------------------------------------ internals

    /// @dev The member the caller operates, if it is a member now; reverts otherwise.
    function _activeMember() private view returns (address member) {
        Operator storage o = _operators[msg.sender];
        if (!o.active) revert CredentialRegistryNotMember(msg.sender);
        return o.member;
    }

    /// @dev Whose revocation list the caller writes: its member's if it operates one (a member
    /// now or not), else its own; a member account whose key was rotated away writes none.
    function _listOwner() private view returns (address issuer) {
        issuer = _operators[msg.sender].member;
        if (issuer != address(0)) return issuer;
        address operator = _operatorOf[msg.sender];
        if (operator != address(0)) revert CredentialRegistryKeyRotated(msg.sender, operator);
        return msg.sender;
    }

    /// @dev Records the caller's member's anchor of `key` at this block and returns the member.
    function _anchor(bytes32 key) private returns (address issuer) {
        issuer = _activeMember();
        if (key == bytes32(0)) revert CredentialRegistryZeroCredentialId();
        mapping(bytes32 => uint256) storage anchors = _anchors[issuer];
        uint256 existing = anchors[key];
        if (existing != 0) revert CredentialRegistryAlreadyAnchored(key, issuer, existing);
        anchors[key] = block.number;
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
