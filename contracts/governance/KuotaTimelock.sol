// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title KuotaTimelock
/// @notice OpenZeppelin's TimelockController, unchanged, under a name the deploy script can deploy.
/// @dev On testnets and mainnet `scripts/deploy.py` hands DEFAULT_ADMIN_ROLE and PARAMETER_ROLE of every
///      Kuota contract to this timelock and renounces the deployer's, so every parameter or role change
///      is proposed, waits `minDelay`, and is executed in public. Deploy it with `admin = address(0)`:
///      the timelock then administers itself and no key can bypass the delay.
contract KuotaTimelock is TimelockController {
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}
