// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title AuditAnchors
/// @notice Heads of append-only, hash-chained logs (kparty gateways' audit logs), pinned on chain.
/// @dev Anchors are keyed by (anchorer, log): `msg.sender` is the anchorer, so nobody can write
/// into another account's logs. Within one log the sequence number strictly increases, so an
/// anchored head can never be replaced or moved back. Each anchor is kept (for reading one back)
/// and emitted (`AuditHeadAnchored`, with its block and transaction, for reading them all).
contract AuditAnchors {
    /// @dev The newest anchored sequence number per (anchorer, log); 0: none yet.
    mapping(address anchorer => mapping(bytes32 log => uint64 seq)) private _latest;
    /// @dev The hash anchored for each record `seq` of a log (zero: not anchored).
    mapping(address anchorer => mapping(bytes32 log => mapping(uint64 seq => bytes32 head))) private _anchors;

    /// @notice `anchorer` pinned record `seq` of `log` to `head`.
    event AuditHeadAnchored(address indexed anchorer, bytes32 indexed log, uint64 seq, bytes32 head);

    /// @notice `seq` is not above the log's newest anchored sequence number `latest`.
    error AuditAnchorsSeqNotIncreasing(bytes32 log, uint64 latest, uint64 seq);
    /// @notice The head is zero (no record hashes to zero: a zero head is a caller's mistake).
    error AuditAnchorsZeroHead();

    /// @notice Pins record `seq` of the caller's log `log` to hash `head`.
    function anchorHead(bytes32 log, uint64 seq, bytes32 head) external {
        if (head == bytes32(0)) revert AuditAnchorsZeroHead();
        uint64 latest = _latest[msg.sender][log];
        if (seq <= latest) revert AuditAnchorsSeqNotIncreasing(log, latest, seq);
        _latest[msg.sender][log] = seq;
        _anchors[msg.sender][log][seq] = head;
        emit AuditHeadAnchored(msg.sender, log, seq, head);
    }

    /// @notice The newest anchored head of `anchorer`'s log `log` (seq 0: none).
    function latestOf(address anchorer, bytes32 log) external view returns (uint64 seq, bytes32 head) {
        seq = _latest[anchorer][log];
        return (seq, _anchors[anchorer][log][seq]);
    }

    /// @notice The head anchored for record `seq` of `anchorer`'s log `log` (zero: not anchored).
    function anchorOf(address anchorer, bytes32 log, uint64 seq) external view returns (bytes32 head) {
        return _anchors[anchorer][log][seq];
    }
}
