// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @dev The few cheatcodes kparty's Solidity tests use (forge-std is not on the npm registry).
interface Vm {
    function prank(address sender) external;
    function expectRevert(bytes calldata revertData) external;
    function assume(bool condition) external pure;
    function roll(uint256 blockNumber) external;
    function warp(uint256 timestamp) external;
}

Vm constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
