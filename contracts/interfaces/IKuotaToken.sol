// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IVotes} from "@openzeppelin/contracts/governance/utils/IVotes.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";

/// @title IKuotaToken
/// @notice The Kuota reward and staking token: capped ERC20 with permit and burn; only MINTER_ROLE
/// (the RewardPool) mints. Balances are voting power once delegated (ERC20Votes, block-number clock).
interface IKuotaToken is IERC20Metadata, IVotes {
    /// @notice `cap` is above what ERC20Votes checkpoints can hold (2^208 − 1).
    error KuotaTokenCapAboveVotesLimit(uint256 cap, uint256 limit);

    /// @notice Mints `amount` to `to`. Reverts with OpenZeppelin `AccessControlUnauthorizedAccount`
    /// unless the caller holds MINTER_ROLE, and with `ERC20ExceededCap` above the cap.
    function mint(address to, uint256 amount) external;

    /// @notice Burns `amount` of the caller's tokens.
    function burn(uint256 amount) external;

    /// @notice The maximum total supply.
    function cap() external view returns (uint256);
}
