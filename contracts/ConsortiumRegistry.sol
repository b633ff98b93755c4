// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {CredentialRegistry} from "./CredentialRegistry.sol";
import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";

/// @title ConsortiumRegistry
/// @notice The consortium's members, with membership intervals recorded by block, and
/// m-of-n governance: members propose, approve and execute admissions, removals, quorum
/// changes and revocations of any member's credentials. Creates its CredentialRegistry.
/// @dev A membership interval is the half-open block range `[fromBlock, toBlock)`;
/// `toBlock == 0` means the interval is still open. Approvals are counted at execution
/// from current members only, so they can never exceed the member count.
contract ConsortiumRegistry is IConsortiumRegistry {
    struct MemberRecord {
        string did;
        string name;
        bool active;
    }

    struct Interval {
        uint64 fromBlock;
        uint64 toBlock;
    }

    struct Proposal {
        ProposalKind kind;
        bool executed;
        uint64 expiresAt;
        address proposer;
        address account;
        uint256 quorum;
        string did;
        string name;
        uint256[] indexes;
    }

    uint256 private immutable _proposalLifetime;
    CredentialRegistry private immutable _credentialRegistry;

    mapping(address account => MemberRecord) private _records;
    mapping(address account => Interval[]) private _intervals;
    mapping(address account => uint256) private _position; // 1-based index into _accounts, 0 if not a member
    address[] private _accounts;
    uint256 private _quorum;

    Proposal[] private _proposals;
    mapping(uint256 id => mapping(address member => bool)) private _approved;

    modifier onlyMember() {
        if (!_records[msg.sender].active) revert ConsortiumRegistryNotMember(msg.sender);
        _;
    }

    /// @notice Creates the consortium with its founding members and its CredentialRegistry.
    /// @param founders The founding members.
    /// @param quorum_ Approvals a proposal needs.
    /// @param proposalLifetime_ Seconds a proposal stays open.
    /// @dev Requirements:
    /// - every founder account is non-zero, distinct, and has a non-empty DID;
    /// - `quorum_` is between 1 and the number of founders.
    ///
    /// Emits a {CredentialRegistryCreated} event, a {MemberAdded} event per founder and a {QuorumChanged} event.
    constructor(MemberInit[] memory founders, uint256 quorum_, uint256 proposalLifetime_) {
        _proposalLifetime = proposalLifetime_;
        _credentialRegistry = new CredentialRegistry(this);
        emit CredentialRegistryCreated(address(_credentialRegistry));
        for (uint256 i = 0; i < founders.length; ++i) {
            _addMember(founders[i].account, founders[i].did, founders[i].name);
        }
        _setQuorum(quorum_);
    }

    // ------------------------------------------------------------------ proposals

    /// @notice Proposes to admit `member`; the proposer's approval counts at once.
    /// @dev Requirements: the caller is a member; `member.account` is non-zero, not a member, with a DID.
    ///
    /// Emits a {ProposalCreated} and a {ProposalApproved} event.
    function proposeAddMember(MemberInit calldata member) external onlyMember returns (uint256 id) {
        if (member.account == address(0)) revert ConsortiumRegistryZeroAddress();
        if (_records[member.account].active) revert ConsortiumRegistryAlreadyMember(member.account);
        if (bytes(member.did).length == 0) revert ConsortiumRegistryEmptyDid(member.account);
        id = _newProposal(ProposalKind.AddMember, member.account, 0);
        Proposal storage p = _proposals[id];
        p.did = member.did;
        p.name = member.name;
    }

    /// @notice Proposes to remove `account`; the proposer's approval counts at once.
    /// @dev Requirements: the caller is a member; `account` is a member.
    ///
    /// Emits a {ProposalCreated} and a {ProposalApproved} event.
    function proposeRemoveMember(address account) external onlyMember returns (uint256 id) {
        if (!_records[account].active) revert ConsortiumRegistryNotMember(account);
        id = _newProposal(ProposalKind.RemoveMember, account, 0);
    }

    /// @notice Proposes a new quorum; the proposer's approval counts at once.
    /// @dev Requirements: the caller is a member; 1 ≤ `newQuorum` ≤ member count.
    ///
    /// Emits a {ProposalCreated} and a {ProposalApproved} event.
    function proposeQuorum(uint256 newQuorum) external onlyMember returns (uint256 id) {
        if (newQuorum == 0 || newQuorum > _accounts.length) {
            revert ConsortiumRegistryInvalidQuorum(newQuorum, _accounts.length);
        }
        id = _newProposal(ProposalKind.ChangeQuorum, address(0), newQuorum);
    }

    /// @notice Proposes to revoke credentials of `issuer` (a removed or compromised member) by status index.
    /// @dev Requirements: the caller is a member; `indexes` is non-empty and strictly increasing.
    ///
    /// Emits a {ProposalCreated} and a {ProposalApproved} event.
    function proposeRevokeCredentials(address issuer, uint256[] calldata indexes)
        external
        onlyMember
        returns (uint256 id)
    {
        if (indexes.length == 0) revert ConsortiumRegistryEmptyRevocation();
        id = _newProposal(ProposalKind.RevokeCredentials, issuer, 0);
        _proposals[id].indexes = indexes;
    }

    /// @notice Approves proposal `id`.
    /// @dev Requirements: the caller is a member; the proposal exists, is open, and the caller has not approved it.
    ///
    /// Emits a {ProposalApproved} event.
    function approve(uint256 id) external onlyMember {
        _open(id);
        if (_approved[id][msg.sender]) revert ConsortiumRegistryAlreadyApproved(id, msg.sender);
        _approved[id][msg.sender] = true;
        emit ProposalApproved(id, msg.sender);
    }

    /// @notice Executes proposal `id` once it has `quorum` approvals from current members.
    /// @dev Requirements: the caller is a member; the proposal exists and is open; the quorum is
    /// reached; the change is still valid (e.g. a removal keeps the quorum ≤ member count).
    ///
    /// Emits a {ProposalExecuted} event and the events of the change ({MemberAdded},
    /// {MemberRemoved}, {QuorumChanged}, or the registry's {StatusWordChanged}).
    function execute(uint256 id) external onlyMember {
        Proposal storage p = _open(id);
        uint256 approvals = approvalCount(id);
        if (approvals < _quorum) revert ConsortiumRegistryQuorumNotReached(id, approvals, _quorum);
        p.executed = true;
        if (p.kind == ProposalKind.AddMember) {
            if (_records[p.account].active) revert ConsortiumRegistryAlreadyMember(p.account);
            _addMember(p.account, p.did, p.name);
        } else if (p.kind == ProposalKind.RemoveMember) {
            _removeMember(p.account);
        } else if (p.kind == ProposalKind.ChangeQuorum) {
            _setQuorum(p.quorum);
        } else {
            _credentialRegistry.consortiumRevoke(p.account, p.indexes);
        }
        emit ProposalExecuted(id, msg.sender);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IConsortiumRegistry
    function approvalCount(uint256 id) public view returns (uint256 count) {
        if (id >= _proposals.length) revert ConsortiumRegistryUnknownProposal(id);
        for (uint256 i = 0; i < _accounts.length; ++i) {
            if (_approved[id][_accounts[i]]) ++count;
        }
    }

    /// @notice Proposal `id`: kind, target account, proposed quorum, expiry, executed flag and
    /// the proposer; DID and name for admissions, status indexes for revocations.
    function proposal(uint256 id)
        external
        view
        returns (
            ProposalKind kind,
            address account,
            uint256 newQuorum,
            uint256 expiresAt,
            bool executed,
            address proposer,
            string memory did,
            string memory name,
            uint256[] memory indexes
        )
    {
        if (id >= _proposals.length) revert ConsortiumRegistryUnknownProposal(id);
        Proposal storage p = _proposals[id];
        return (p.kind, p.account, p.quorum, p.expiresAt, p.executed, p.proposer, p.did, p.name, p.indexes);
    }

    /// @notice The number of proposals ever made (ids are 0 … count − 1).
    function proposalCount() external view returns (uint256) {
        return _proposals.length;
    }

    /// @notice Whether `member` approved proposal `id`.
    function hasApproved(uint256 id, address member) external view returns (bool) {
        return _approved[id][member];
    }

    /// @notice Seconds a proposal stays open.
    function proposalLifetime() external view returns (uint256) {
        return _proposalLifetime;
    }

    /// @inheritdoc IConsortiumRegistry
    function credentialRegistry() external view returns (address) {
        return address(_credentialRegistry);
    }

    /// @inheritdoc IConsortiumRegistry
    function isMember(address account) external view returns (bool) {
        return _records[account].active;
    }

    /// @inheritdoc IConsortiumRegistry
    function wasMemberAt(address account, uint256 blockNumber) external view returns (bool) {
        Interval[] storage intervals = _intervals[account];
        for (uint256 i = intervals.length; i > 0; --i) {
            Interval storage interval = intervals[i - 1];
            if (blockNumber >= interval.fromBlock) {
                return interval.toBlock == 0 || blockNumber < interval.toBlock;
            }
        }
        return false;
    }

    /// @notice Membership intervals of `account` as parallel arrays of start and end blocks (end 0: open).
    function membershipHistory(address account) external view returns (uint256[] memory from, uint256[] memory to) {
        Interval[] storage intervals = _intervals[account];
        from = new uint256[](intervals.length);
        to = new uint256[](intervals.length);
        for (uint256 i = 0; i < intervals.length; ++i) {
            from[i] = intervals[i].fromBlock;
            to[i] = intervals[i].toBlock;
        }
    }

    /// @inheritdoc IConsortiumRegistry
    function memberOf(address account) external view returns (string memory did, string memory name, bool active) {
        MemberRecord storage record = _records[account];
        return (record.did, record.name, record.active);
    }

    /// @inheritdoc IConsortiumRegistry
    function members() external view returns (address[] memory) {
        return _accounts;
    }

    /// @inheritdoc IConsortiumRegistry
    function memberCount() external view returns (uint256) {
        return _accounts.length;
    }

    /// @inheritdoc IConsortiumRegistry
    function quorum() external view returns (uint256) {
        return _quorum;
    }

    // ------------------------------------------------------------------ internals

    function _newProposal(ProposalKind kind, address account, uint256 newQuorum) private returns (uint256 id) {
        id = _proposals.length;
        Proposal storage p = _proposals.push();
        p.kind = kind;
        p.account = account;
        p.quorum = newQuorum;
        p.proposer = msg.sender;
        p.expiresAt = uint64(block.timestamp + _proposalLifetime);
        emit ProposalCreated(id, kind, msg.sender, account, newQuorum, p.expiresAt);
        _approved[id][msg.sender] = true;
        emit ProposalApproved(id, msg.sender);
    }

    function _open(uint256 id) private view returns (Proposal storage p) {
        if (id >= _proposals.length) revert ConsortiumRegistryUnknownProposal(id);
        p = _proposals[id];
        if (p.executed) revert ConsortiumRegistryProposalExecuted(id);
        if (block.timestamp >= p.expiresAt) revert ConsortiumRegistryProposalExpired(id, p.expiresAt);
    }

    function _addMember(address account, string memory did, string memory name) private {
        if (account == address(0)) revert ConsortiumRegistryZeroAddress();
        if (_records[account].active) revert ConsortiumRegistryAlreadyMember(account);
        if (bytes(did).length == 0) revert ConsortiumRegistryEmptyDid(account);
        _records[account] = MemberRecord({did: did, name: name, active: true});
        _intervals[account].push(Interval({fromBlock: uint64(block.number), toBlock: 0}));
        _accounts.push(account);
        _position[account] = _accounts.length;
        _credentialRegistry.setIssuer(account, true);
        emit MemberAdded(account, did, name, block.number);
    }

    function _removeMember(address account) private {
        if (!_records[account].active) revert ConsortiumRegistryNotMember(account);
        if (_quorum > _accounts.length - 1) revert ConsortiumRegistryInvalidQuorum(_quorum, _accounts.length - 1);
        _records[account].active = false;
        Interval[] storage intervals = _intervals[account];
        intervals[intervals.length - 1].toBlock = uint64(block.number);
        uint256 position = _position[account];
        address last = _accounts[_accounts.length - 1];
        _accounts[position - 1] = last;
        _position[last] = position;
        _accounts.pop();
        delete _position[account];
        _credentialRegistry.setIssuer(account, false);
        emit MemberRemoved(account, block.number);
    }

    function _setQuorum(uint256 newQuorum) private {
        if (newQuorum == 0 || newQuorum > _accounts.length) {
            revert ConsortiumRegistryInvalidQuorum(newQuorum, _accounts.length);
        }
        uint256 previous = _quorum;
        _quorum = newQuorum;
        emit QuorumChanged(previous, newQuorum);
    }
}
