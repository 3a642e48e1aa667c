// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IGovernor, Governor} from "@openzeppelin/contracts-5.3/governance/Governor.sol";
import {TimelockController} from "@openzeppelin/contracts-5.3/governance/TimelockController.sol";
import {GovernorCountingSimple} from "@openzeppelin/contracts-5.3/governance/extensions/GovernorCountingSimple.sol";
import {GovernorSettings} from "@openzeppelin/contracts-5.3/governance/extensions/GovernorSettings.sol";
import {GovernorTimelockControl} from "@openzeppelin/contracts-5.3/governance/extensions/GovernorTimelockControl.sol";
import {GovernorVotes} from "@openzeppelin/contracts-5.3/governance/extensions/GovernorVotes.sol";
import {GovernorVotesQuorumFraction} from "@openzeppelin/contracts-5.3/governance/extensions/GovernorVotesQuorumFraction.sol";
import {IVotes} from "@openzeppelin/contracts-5.3/governance/utils/IVotes.sol";

/// @title KuotaGovernor
/// @notice KUOTA holders' governance: OpenZeppelin's Governor with settings (voting delay, voting period,
/// proposal threshold), simple counting (against, for, abstain), votes from KuotaToken's ERC20Votes
/// checkpoints, a quorum as a fraction of the supply, and execution through a TimelockController.
/// @dev Built on OpenZeppelin Contracts 5.3.0's governance, unchanged: 5.4.0's Governor imports
/// SignatureChecker, whose 5.4.0 version pulls in `Bytes.slice` with the cancun-only `mcopy`, and Kuota's
/// bytecode targets shanghai. 5.3.0's Governor has the same interface, storage and behaviour for
/// everything used here (the 5.4.0 changes are ERC-7913 signers for `castVoteBySig`). The token and the
/// timelock are 5.4.0 contracts; the types differ only by source file, the ABI is the same.
/// The timelock, not this contract, holds every admin and parameter role of the Kuota contracts, and
/// this contract is the timelock's only proposer and canceller: a passed proposal is queued, waits the
/// timelock's `minDelay`, then anyone executes it. The settings change only by proposal
/// (`onlyGovernance`). Voting delay and period count blocks: the token's clock is the block number.
contract KuotaGovernor is
    Governor,
    GovernorSettings,
    GovernorCountingSimple,
    GovernorVotes,
    GovernorVotesQuorumFraction,
    GovernorTimelockControl
{
    /// @param token KuotaToken (ERC20Votes).
    /// @param timelock_ The KuotaTimelock that executes passed proposals.
    /// @param votingDelay_ Blocks between a proposal and the snapshot its votes are counted at.
    /// @param votingPeriod_ Blocks the vote stays open.
    /// @param proposalThreshold_ Votes (token base units) a proposer needs at the previous block.
    /// @param quorumNumerator_ Quorum in percent of the total supply at the snapshot (for + abstain).
    constructor(
        IVotes token,
        TimelockController timelock_,
        uint48 votingDelay_,
        uint32 votingPeriod_,
        uint256 proposalThreshold_,
        uint256 quorumNumerator_
    )
        Governor("Kuota Governor")
        GovernorSettings(votingDelay_, votingPeriod_, proposalThreshold_)
        GovernorVotes(token)
        GovernorVotesQuorumFraction(quorumNumerator_)
        GovernorTimelockControl(timelock_)
    {}

    /// @inheritdoc IGovernor
    function votingDelay() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.votingDelay();
    }

    /// @inheritdoc IGovernor
    function votingPeriod() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.votingPeriod();
    }

    /// @inheritdoc IGovernor
    function quorum(uint256 timepoint) public view override(Governor, GovernorVotesQuorumFraction) returns (uint256) {
        return super.quorum(timepoint);
    }

    /// @inheritdoc IGovernor
    function state(uint256 proposalId) public view override(Governor, GovernorTimelockControl) returns (ProposalState) {
        return super.state(proposalId);
    }

    /// @inheritdoc IGovernor
    function proposalNeedsQueuing(uint256 proposalId)
        public
        view
        override(Governor, GovernorTimelockControl)
        returns (bool)
    {
        return super.proposalNeedsQueuing(proposalId);
    }

    /// @inheritdoc IGovernor
    function proposalThreshold() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.proposalThreshold();
    }

    function _queueOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint48) {
        return super._queueOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    function _executeOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) {
        super._executeOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    function _cancel(
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint256) {
        return super._cancel(targets, values, calldatas, descriptionHash);
    }

    function _executor() internal view override(Governor, GovernorTimelockControl) returns (address) {
        return super._executor();
    }
}
