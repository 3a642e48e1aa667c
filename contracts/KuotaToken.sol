// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC20Votes} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Votes.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {IKuotaToken} from "./interfaces/IKuotaToken.sol";

/// @title KuotaToken
/// @notice ERC20 "Kuota"/"KUOTA" (18 decimals) with EIP-2612 permit, a hard cap, burning and ERC20Votes
/// (delegation and per-block checkpoints, the voting power KuotaGovernor counts).
/// Only MINTER_ROLE mints; the deployment grants it to the RewardPool alone.
/// @dev Votes follow delegation only: a holder that never delegates (to itself or another) has no voting
/// power, and its transfers and mints write no checkpoint (ERC20Votes skips address(0) delegates), so a
/// payout address that does not vote pays no checkpoint gas on reward claims.
contract KuotaToken is ERC20, ERC20Permit, ERC20Votes, ERC20Capped, ERC20Burnable, AccessControl, IKuotaToken {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @param admin Receives DEFAULT_ADMIN_ROLE (grants MINTER_ROLE).
    /// @param cap_ Maximum total supply, at most 2^208 − 1 (the ERC20Votes checkpoint width).
    /// @param initialSupply Minted to `initialHolder` at deployment (counts against the cap).
    /// @param initialHolder Receiver of the initial supply (ignored when `initialSupply` is 0).
    constructor(address admin, uint256 cap_, uint256 initialSupply, address initialHolder)
        ERC20("Kuota", "KUOTA")
        ERC20Permit("Kuota")
        ERC20Capped(cap_)
    {
        // A larger cap would be a promise the token cannot keep: mints above the limit revert.
        if (cap_ > _maxSupply()) revert KuotaTokenCapAboveVotesLimit(cap_, _maxSupply());
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (initialSupply > 0) _mint(initialHolder, initialSupply);
    }

    /// @inheritdoc IKuotaToken
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    /// @inheritdoc IKuotaToken
    function burn(uint256 amount) public override(ERC20Burnable, IKuotaToken) {
        super.burn(amount);
    }

    /// @inheritdoc IKuotaToken
    function cap() public view override(ERC20Capped, IKuotaToken) returns (uint256) {
        return super.cap();
    }

    /// @inheritdoc Nonces
    function nonces(address owner) public view override(ERC20Permit, Nonces) returns (uint256) {
        return super.nonces(owner);
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Votes, ERC20Capped) {
        super._update(from, to, value);
    }
}
