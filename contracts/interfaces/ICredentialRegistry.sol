// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title ICredentialRegistry
/// @notice What was issued (anchors of credential ids, per issuer) and what its status is
/// (per-issuer bit lists: `revocation`, final, and `suspension`, reversible).
/// @dev An issuer is a member's account as the consortium records it (the address of the
/// member's DID); the member acts through its operating account, which starts as that same
/// address and changes only by a key rotation the consortium's quorum executes. Anchors and
/// status lists stay with the issuer across rotations.
interface ICredentialRegistry {
    /// @notice Everything a verifier needs about one credential, read in one call.
    struct CredentialState {
        address anchoredBy; // the claimed issuer if it anchored the key, zero otherwise
        uint256 anchoredAt; // block number of the anchoring transaction, zero if not anchored
        bool issuerIsMember; // whether the claimed issuer is a consortium member now
        bool issuerWasMemberAtAnchor; // whether the claimed issuer was a member at block `anchoredAt`
        bool revoked; // bit `revocationIndex` of the claimed issuer's revocation list
        bool suspended; // bit `suspensionIndex` of the claimed issuer's suspension list
    }

    /// @notice Emitted when `issuer` anchors `credentialId`.
    event CredentialAnchored(bytes32 indexed credentialId, address indexed issuer, uint256 blockNumber);

    /// @notice Emitted when `issuer` anchors the Merkle root of a batch of `count` credential ids.
    event BatchAnchored(bytes32 indexed root, address indexed issuer, uint256 count, uint256 blockNumber);

    /// @notice Emitted when a batch sets bits `bits` of word `word` of `issuer`'s list
    /// (`revocation` true: revocation list; false: suspension list). Bit i of word w is index 256·w + i.
    event StatusWordChanged(address indexed issuer, bool indexed revocation, uint256 indexed word, uint256 bits, bool set);

    /// @notice Emitted when `issuer` sets bit `index` of its revocation list.
    event CredentialRevoked(address indexed issuer, uint256 indexed index);

    /// @notice Emitted when `issuer` sets bit `index` of its suspension list.
    event CredentialSuspended(address indexed issuer, uint256 indexed index);

    /// @notice Emitted when `issuer` clears bit `index` of its suspension list.
    event CredentialReinstated(address indexed issuer, uint256 indexed index);

    /// @notice `caller` is not the operating account of a current consortium member.
    error CredentialRegistryNotMember(address caller);

    /// @notice `account` is a member whose operating key was rotated to `operator`: only
    /// `operator` acts for it now.
    error CredentialRegistryKeyRotated(address account, address operator);

    /// @notice Only the consortium contract may call this function.
    error CredentialRegistryNotConsortium(address caller);

    /// @notice A batch must not be empty.
    error CredentialRegistryEmptyBatch();

    /// @notice Batch indexes must be strictly increasing; `index` follows `previous`.
    error CredentialRegistryUnsortedIndexes(uint256 previous, uint256 index);

    /// @notice The zero credential id cannot be anchored.
    error CredentialRegistryZeroCredentialId();

    /// @notice `issuer` already anchored `credentialId` (an id or a batch root) at `blockNumber`.
    error CredentialRegistryAlreadyAnchored(bytes32 credentialId, address issuer, uint256 blockNumber);

    /// @notice Bit `index` of `issuer`'s revocation list is already set.
    error CredentialRegistryAlreadyRevoked(address issuer, uint256 index);

    /// @notice Bit `index` of `issuer`'s suspension list is already set.
    error CredentialRegistryAlreadySuspended(address issuer, uint256 index);

    /// @notice Bit `index` of `issuer`'s suspension list is not set.
    error CredentialRegistryNotSuspended(address issuer, uint256 index);

    /// @notice The consortium whose members may anchor and change status.
    function consortium() external view returns (address);

    /// @notice Whether `issuer` anchored `key` (a credential id or a batch root), and at which
    /// block (zero if not). Another member's anchor of the same key is not `issuer`'s.
    function anchorOf(address issuer, bytes32 key) external view returns (bool anchored, uint256 blockNumber);

    /// @notice Whether bit `index` of `issuer`'s revocation list is set.
    function isRevoked(address issuer, uint256 index) external view returns (bool);

    /// @notice Whether bit `index` of `issuer`'s suspension list is set.
    function isSuspended(address issuer, uint256 index) external view returns (bool);

    /// @notice `issuer`'s anchor of `key` (a credential id or a batch root), membership of the
    /// account `issuer` that claims to have issued it, and the status bits of `issuer`'s lists,
    /// in one read. Anchors by other accounts are ignored.
    function credentialState(bytes32 key, address issuer, uint256 revocationIndex, uint256 suspensionIndex)
        external
        view
        returns (CredentialState memory);
}
