// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {CredentialRegistry} from "./CredentialRegistry.sol";
import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";

/// @title ConsortiumRegistry
/// @notice The consortium's members, with membership intervals recorded by block, and
/// m-of-n governance: members propose, approve and execute admissions, removals, quorum
/// changes and revocations of any member's credentials. Creates its CredentialRegistry.
/// @dev A membership interval is the half-open block range `[fromBlock, toBlock)`;
/// `toBlock == 0` means the interval is still open.
///
/// A member is its account (the address of its DID, which credentials name as issuer); it
/// acts through an operating account, at first that same address. Only a `RotateKey` proposal
/// executed by the quorum changes the operating account (an ERC-1056 `changeOwner` on the DID
/// registry alone changes nothing here): from then on only the new operator acts for the
/// member, and the member's anchors and status lists stay where they are.
///
/// An approval is recorded with the approver's epoch, which grows at every admission and key
/// rotation; it counts only while the approver is a member in that same epoch. So a removed
/// member's approvals never come back when it is re-admitted, approvals sent with a rotated
/// key lapse, and approvals can never exceed the member count.
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
        address newOperator;
    }

    uint256 private immutable _proposalLifetime;
    CredentialRegistry private immutable _credentialRegistry;

    mapping(address account => MemberRecord) private _records;
    mapping(address account => Interval[]) private _intervals;
    mapping(address account => uint256) private _position; // 1-based index into _accounts, 0 if not a member
    address[] private _accounts;
    uint256 private _quorum;

    mapping(address member => address operator) private _operators;
    mapping(address operator => address member) private _members; // cleared when the key rotates away
    mapping(address member => uint256) private _epochs; // +1 at every admission and key rotation

    Proposal[] private _proposals;
    mapping(uint256 id => mapping(address member => uint256 epoch)) private _approvals;

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
    /// @dev Requirements: the caller is a member's operating account; `member.account` is
    /// non-zero, not a member, not another member's operating account, with a DID.
    ///
    /// Emits a {ProposalCreated} and a {ProposalApproved} event.
    function proposeAddMember(MemberInit calldata member) external returns (uint256 id) {
        address proposer = _memberOfSender();
        _checkAdmission(member.account, member.did);
        id = _newProposal(proposer, ProposalKind.AddMember, member.account, 0);
        Proposal storage p = _proposals[id];
        p.did = member.did;
        p.name = member.name;
    }

    /// @notice Proposes to remove `account`; the proposer's approval counts at once.
    /// @dev Requirements: the caller is a member's operating account; `account` is a member.
    ///
    /// Emits a {ProposalCreated} and a {ProposalApproved} event.
    function proposeRemoveMember(address account) external returns (uint256 id) {
        address proposer = _memberOfSender();
        if (!_records[account].active) revert ConsortiumRegistryNotMember(account);
        id = _newProposal(proposer, ProposalKind.RemoveMember, account, 0);
    }

    /// @notice Proposes a new quorum; the proposer's approval counts at once.
    /// @dev Requirements: the caller is a member's operating account; 1 ≤ `newQuorum` ≤ member count.
    ///
    /// Emits a {ProposalCreated} and a {ProposalApproved} event.
    function proposeQuorum(uint256 newQuorum) external returns (uint256 id) {
        address proposer = _memberOfSender();
        if (newQuorum == 0 || newQuorum > _accounts.length) {
            revert ConsortiumRegistryInvalidQuorum(newQuorum, _accounts.length);
        }
        id = _newProposal(proposer, ProposalKind.ChangeQuorum, address(0), newQuorum);
    }

    /// @notice Proposes to revoke credentials of `issuer` (a removed or compromised member) by status index.
    /// @dev Requirements: the caller is a member's operating account; `indexes` is non-empty and strictly increasing.
    ///
    /// Emits a {ProposalCreated} and a {ProposalApproved} event.
    function proposeRevokeCredentials(address issuer, uint256[] calldata indexes) external returns (uint256 id) {
        address proposer = _memberOfSender();
        if (indexes.length == 0) revert ConsortiumRegistryEmptyRevocation();
        id = _newProposal(proposer, ProposalKind.RevokeCredentials, issuer, 0);
        _proposals[id].indexes = indexes;
    }

    /// @notice Proposes that `newOperator` become the operating account of `member` (a key
    /// rotation); the proposer's approval counts at once. On execution `member`'s rights move to
    /// `newOperator` and its previous operating account loses them.
    /// @dev Requirements:
    /// - the caller is a member's operating account; `member` is a member;
    /// - `newOperator` is non-zero, is no member's operating account, and is not the account of
    ///   a present or past member other than `member` itself (a member may rotate back to its
    ///   own account).
    ///
    /// Emits a {ProposalCreated}, a {KeyRotationProposed} and a {ProposalApproved} event.
    function proposeRotateKey(address member, address newOperator) external returns (uint256 id) {
        address proposer = _memberOfSender();
        if (!_records[member].active) revert ConsortiumRegistryNotMember(member);
        _checkOperator(member, newOperator);
        id = _proposals.length;
        _createProposal(proposer, ProposalKind.RotateKey, member, 0);
        _proposals[id].newOperator = newOperator;
        emit KeyRotationProposed(id, member, newOperator);
        _approve(id, proposer);
    }

    /// @notice Approves proposal `id`.
    /// @dev Requirements: the caller is a member's operating account; the proposal exists, is
    /// open, and the member has not approved it during its current membership with its current key.
    ///
    /// Emits a {ProposalApproved} event.
    function approve(uint256 id) external {
        address member = _memberOfSender();
        _open(id);
        if (_approvals[id][member] == _epochs[member]) revert ConsortiumRegistryAlreadyApproved(id, member);
        _approve(id, member);
    }

    /// @notice Executes proposal `id` once it has `quorum` approvals that count (see {approvalCount}).
    /// @dev Requirements: the caller is a member's operating account; the proposal exists and is
    /// open; the quorum is reached; the change is still valid (e.g. a removal keeps the quorum ≤
    /// member count, a rotation's member is still a member and its new operator still free).
    ///
    /// Emits a {ProposalExecuted} event and the events of the change ({MemberAdded},
    /// {MemberRemoved}, {QuorumChanged}, {MemberKeyRotated}, or the registry's {StatusWordChanged}).
    function execute(uint256 id) external {
        address executor = _memberOfSender();
        Proposal storage p = _open(id);
        uint256 approvals = approvalCount(id);
        if (approvals < _quorum) revert ConsortiumRegistryQuorumNotReached(id, approvals, _quorum);
        p.executed = true;
        if (p.kind == ProposalKind.AddMember) {
            _addMember(p.account, p.did, p.name);
        } else if (p.kind == ProposalKind.RemoveMember) {
            _removeMember(p.account);
        } else if (p.kind == ProposalKind.ChangeQuorum) {
            _setQuorum(p.quorum);
        } else if (p.kind == ProposalKind.RevokeCredentials) {
            _credentialRegistry.consortiumRevoke(p.account, p.indexes);
        } else {
            _rotateKey(p.account, p.newOperator);
        }
        emit ProposalExecuted(id, executor);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IConsortiumRegistry
    function approvalCount(uint256 id) public view returns (uint256 count) {
        if (id >= _proposals.length) revert ConsortiumRegistryUnknownProposal(id);
        for (uint256 i = 0; i < _accounts.length; ++i) {
            address member = _accounts[i];
            if (_approvals[id][member] == _epochs[member]) ++count;
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

    /// @notice Whether `member` approved proposal `id` and the approval counts (given during its
    /// current membership, with its current operating account).
    function hasApproved(uint256 id, address member) external view returns (bool) {
        return _records[member].active && _approvals[id][member] == _epochs[member];
    }

    /// @notice The operating account that proposal `id` (a key rotation) makes its member's; zero
    /// for other kinds.
    function proposedOperator(uint256 id) external view returns (address) {
        if (id >= _proposals.length) revert ConsortiumRegistryUnknownProposal(id);
        return _proposals[id].newOperator;
    }

    /// @inheritdoc IConsortiumRegistry
    function operatorOf(address member) external view returns (address) {
        return _operators[member];
    }

    /// @inheritdoc IConsortiumRegistry
    function memberByOperator(address operator) external view returns (address) {
        return _members[operator];
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

    /// @dev The member whose operating account is the caller; reverts if there is none.
    function _memberOfSender() private view returns (address member) {
        member = _members[msg.sender];
        if (member == address(0) || !_records[member].active) revert ConsortiumRegistryNotMember(msg.sender);
    }

    function _newProposal(address proposer, ProposalKind kind, address account, uint256 newQuorum)
        private
        returns (uint256 id)
    {
        id = _proposals.length;
        _createProposal(proposer, kind, account, newQuorum);
        _approve(id, proposer);
    }

    function _createProposal(address proposer, ProposalKind kind, address account, uint256 newQuorum) private {
        uint256 id = _proposals.length;
        Proposal storage p = _proposals.push();
        p.kind = kind;
        p.account = account;
        p.quorum = newQuorum;
        p.proposer = proposer;
        p.expiresAt = uint64(block.timestamp + _proposalLifetime);
        emit ProposalCreated(id, kind, proposer, account, newQuorum, p.expiresAt);
    }

    function _approve(uint256 id, address member) private {
        _approvals[id][member] = _epochs[member];
        emit ProposalApproved(id, member);
    }

    /// @dev An admission is valid for a non-zero account with a DID that is neither a member nor
    /// another member's operating account.
    function _checkAdmission(address account, string memory did) private view {
        if (account == address(0)) revert ConsortiumRegistryZeroAddress();
        if (_records[account].active) revert ConsortiumRegistryAlreadyMember(account);
        address actsFor = _members[account];
        if (actsFor != address(0) && actsFor != account) revert ConsortiumRegistryAccountInUse(account);
        if (bytes(did).length == 0) revert ConsortiumRegistryEmptyDid(account);
    }

    /// @dev `newOperator` may operate `member`: non-zero, nobody's operator (the member's current
    /// one included), and not the account of a present or past member other than `member`.
    function _checkOperator(address member, address newOperator) private view {
        if (newOperator == address(0)) revert ConsortiumRegistryZeroAddress();
        if (_members[newOperator] != address(0) || (newOperator != member && _intervals[newOperator].length != 0)) {
            revert ConsortiumRegistryAccountInUse(newOperator);
        }
    }

    function _rotateKey(address member, address newOperator) private {
        if (!_records[member].active) revert ConsortiumRegistryNotMember(member);
        _checkOperator(member, newOperator);
        address previous = _operators[member];
        delete _members[previous];
        _operators[member] = newOperator;
        _members[newOperator] = member;
        ++_epochs[member]; // approvals sent with the previous key lapse
        _credentialRegistry.setOperator(member, newOperator);
        emit MemberKeyRotated(member, previous, newOperator);
    }

    function _open(uint256 id) private view returns (Proposal storage p) {
        if (id >= _proposals.length) revert ConsortiumRegistryUnknownProposal(id);
        p = _proposals[id];
        if (p.executed) revert ConsortiumRegistryProposalExecuted(id);
        if (block.timestamp >= p.expiresAt) revert ConsortiumRegistryProposalExpired(id, p.expiresAt);
    }

    /// @dev A member re-admitted after a key rotation keeps its rotated operating account.
    function _addMember(address account, string memory did, string memory name) private {
        _checkAdmission(account, did);
        if (_operators[account] == address(0)) {
            _operators[account] = account;
            _members[account] = account;
            _credentialRegistry.setOperator(account, account);
        }
        ++_epochs[account];
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
