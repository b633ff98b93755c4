// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IConsortiumRegistry
/// @notice Who may issue K-th Party credentials: the consortium's members, with the
/// history of their membership recorded by block so that past questions
/// ("was this account a member when it anchored that credential?") have answers.
interface IConsortiumRegistry {
    /// @notice A member as supplied at construction or on admission.
    struct MemberInit {
        address account;
        string did;
        string name;
    }

    /// @notice Emitted when `account` becomes a member at `blockNumber`.
    event MemberAdded(address indexed account, string did, string name, uint256 blockNumber);

    /// @notice Emitted when `account` stops being a member at `blockNumber`.
    event MemberRemoved(address indexed account, uint256 blockNumber);

    /// @notice Emitted when `member`'s operating account changes from `previousOperator` to
    /// `newOperator` (a key rotation the quorum executed).
    event MemberKeyRotated(address indexed member, address indexed previousOperator, address indexed newOperator);

    /// @notice Emitted when the quorum changes.
    event QuorumChanged(uint256 previousQuorum, uint256 newQuorum);

    /// @notice What a governance proposal does when executed.
    enum ProposalKind {
        AddMember,
        RemoveMember,
        ChangeQuorum,
        RevokeCredentials,
        RotateKey
    }

    /// @notice Emitted when `proposer` creates proposal `id` (its approval counts at once).
    event ProposalCreated(
        uint256 indexed id, ProposalKind kind, address indexed proposer, address indexed account, uint256 quorum, uint256 expiresAt
    );

    /// @notice Emitted right after {ProposalCreated} for a key rotation: proposal `id` makes
    /// `newOperator` the operating account of `member`.
    event KeyRotationProposed(uint256 indexed id, address indexed member, address indexed newOperator);

    /// @notice Emitted when `member` approves proposal `id` (`member` is the member's account,
    /// whichever operating account sent the approval).
    event ProposalApproved(uint256 indexed id, address indexed member);

    /// @notice Emitted when proposal `id` is executed.
    event ProposalExecuted(uint256 indexed id, address indexed executor);

    /// @notice Emitted at construction with the credential registry this consortium created.
    event CredentialRegistryCreated(address registry);

    /// @notice The zero address cannot be a member.
    error ConsortiumRegistryZeroAddress();

    /// @notice `account` is already a member.
    error ConsortiumRegistryAlreadyMember(address account);

    /// @notice `account` is not a current member (or not the operating account of one).
    error ConsortiumRegistryNotMember(address account);

    /// @notice `account` cannot become a member or an operating account: it is the operating
    /// account of a member, or (as an operator) the account of a present or past member.
    error ConsortiumRegistryAccountInUse(address account);

    /// @notice A member needs a DID.
    error ConsortiumRegistryEmptyDid(address account);

    /// @notice `quorum` must be at least 1 and at most `memberCount`.
    error ConsortiumRegistryInvalidQuorum(uint256 quorum, uint256 memberCount);

    /// @notice No proposal has id `id`.
    error ConsortiumRegistryUnknownProposal(uint256 id);

    /// @notice Proposal `id` expired at `expiresAt` (unix time).
    error ConsortiumRegistryProposalExpired(uint256 id, uint256 expiresAt);

    /// @notice Proposal `id` was already executed.
    error ConsortiumRegistryProposalExecuted(uint256 id);

    /// @notice `member` already approved proposal `id`.
    error ConsortiumRegistryAlreadyApproved(uint256 id, address member);

    /// @notice Proposal `id` has `approvals` approvals from current members; `quorum` are needed.
    error ConsortiumRegistryQuorumNotReached(uint256 id, uint256 approvals, uint256 quorum);

    /// @notice A revocation proposal needs at least one index.
    error ConsortiumRegistryEmptyRevocation();

    /// @notice Whether `account` is a member now.
    function isMember(address account) external view returns (bool);

    /// @notice Whether `account` was a member at block `blockNumber`.
    function wasMemberAt(address account, uint256 blockNumber) external view returns (bool);

    /// @notice The DID and display name recorded for `account`, and whether it is a member now.
    function memberOf(address account) external view returns (string memory did, string memory name, bool active);

    /// @notice The current members' accounts.
    function members() external view returns (address[] memory);

    /// @notice The number of current members.
    function memberCount() external view returns (uint256);

    /// @notice The number of approvals a governance proposal needs.
    function quorum() external view returns (uint256);

    /// @notice The credential registry whose credentials the quorum can revoke.
    function credentialRegistry() external view returns (address);

    /// @notice Approvals of proposal `id` that count: given by a current member during its
    /// current membership, with its current operating account.
    function approvalCount(uint256 id) external view returns (uint256);

    /// @notice The operating account of `member` (zero if never a member).
    function operatorOf(address member) external view returns (address);

    /// @notice The member that acts through `operator` (zero if none).
    function memberByOperator(address operator) external view returns (address);
}
