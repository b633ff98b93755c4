// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";

/// @title ConsortiumRegistry
/// @notice The consortium's members, with membership intervals recorded by block.
/// @dev A membership interval is the half-open block range `[fromBlock, toBlock)`;
/// `toBlock == 0` means the interval is still open.
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

    mapping(address account => MemberRecord) private _records;
    mapping(address account => Interval[]) private _intervals;
    address[] private _accounts;
    uint256 private _quorum;

    /// @notice Creates the consortium with its founding members.
    /// @dev Requirements:
    /// - every account is non-zero, distinct, and has a non-empty DID;
    /// - `quorum_` is between 1 and the number of founding members.
    ///
    /// Emits a {MemberAdded} event per founding member and a {QuorumChanged} event.
    constructor(MemberInit[] memory founders, uint256 quorum_) {
        for (uint256 i = 0; i < founders.length; ++i) {
            _addMember(founders[i]);
        }
        _setQuorum(quorum_);
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

    function _addMember(MemberInit memory member) private {
        if (member.account == address(0)) revert ConsortiumRegistryZeroAddress();
        if (_records[member.account].active) revert ConsortiumRegistryAlreadyMember(member.account);
        if (bytes(member.did).length == 0) revert ConsortiumRegistryEmptyDid(member.account);
        _records[member.account] = MemberRecord({did: member.did, name: member.name, active: true});
        _intervals[member.account].push(Interval({fromBlock: uint64(block.number), toBlock: 0}));
        _accounts.push(member.account);
        emit MemberAdded(member.account, member.did, member.name, block.number);
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
