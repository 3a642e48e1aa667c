// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title INodeRegistry
/// @notice Registry of bandwidth nodes. A node is identified by its node key's address at registration
/// (distinct from the operator wallet that stakes and manages it); the node proves key possession with
/// an EIP-712 `NodeKey(address node,address key,address operator)` signature, domain
/// `{name: "Kuota NodeRegistry", version: "1", chainId, verifyingContract: registry}`.
interface INodeRegistry {
    enum NodeStatus {
        None,
        Active,
        Exiting,
        Jailed
    }

    struct Node {
        address operator;
        address payout;
        address signingKey;
        uint96 pricePerGiB;
        uint64 capacityMbps;
        uint64 registeredAt;
        NodeStatus status;
        string region;
        string metadataURI;
    }

    error RegistryNodeAlreadyRegistered(address node);
    error RegistryNodeNotRegistered(address node);
    /// @notice `caller` is not `operator`, the operator of `node`.
    error RegistryNotNodeOperator(address node, address caller, address operator);
    /// @notice The key signature was expected from `key` but recovers to `recovered`.
    error RegistryInvalidKeySignature(address key, address recovered);
    error RegistryZeroAddress(string field);
    /// @notice `node` has `status`, which does not allow this action.
    error RegistryInvalidStatus(address node, uint8 status);
    error RegistryStringTooLong(string field, uint256 length, uint256 max);
    /// @notice The node key `key` is the operator's own wallet: the hot key on the relay machine must
    /// not be the key that holds the stake.
    error RegistryNodeKeyIsOperator(address key);
    /// @notice `operator` has `staked` bonded; registering needs `required`.
    error RegistryInsufficientStake(address operator, uint256 staked, uint256 required);
    /// @notice Parameter `name` set to `value`, outside [`min`, `max`].
    error RegistryParameterOutOfBounds(string name, uint256 value, uint256 min, uint256 max);

    event NodeRegistered(address indexed node, address indexed operator, address payout, uint96 pricePerGiB, uint64 capacityMbps, string region, string metadataURI);
    event NodeUpdated(address indexed node, address payout, uint96 pricePerGiB, uint64 capacityMbps, string region, string metadataURI);
    event NodeKeyRotated(address indexed node, address oldKey, address newKey);
    event NodeExitRequested(address indexed node, address indexed operator);
    event NodeJailed(address indexed node, string reason);
    event NodeUnjailed(address indexed node);
    event ParameterUpdated(string name, uint256 oldValue, uint256 newValue);

    /// @notice Registers `node` for the caller (its operator). Requires the operator's bonded stake to cover
    /// `minStakePerNode × (its nodes not exited + 1)` and `nodeKeySignature` by `node` over NodeKey(node, node, operator).
    function register(
        address node,
        address payout,
        uint96 pricePerGiB,
        uint64 capacityMbps,
        string calldata region,
        string calldata metadataURI,
        bytes calldata nodeKeySignature
    ) external;

    /// @notice Operator only: updates the mutable fields of `node`.
    function update(
        address node,
        address payout,
        uint96 pricePerGiB,
        uint64 capacityMbps,
        string calldata region,
        string calldata metadataURI
    ) external;

    /// @notice Operator only: sets the node's signing key to `newKey`, proven by `newKeySignature`
    /// (by `newKey` over NodeKey(node, newKey, operator)). The node's identity (`node`) does not change.
    function rotateKey(address node, address newKey, bytes calldata newKeySignature) external;

    /// @notice Operator only: Active → Exiting. The node no longer counts toward `requiredStake`.
    function requestExit(address node) external;

    /// @notice JAILER_ROLE: Active or Exiting → Jailed. A jailed node is still paid but earns no rewards.
    function jail(address node, string calldata reason) external;

    /// @notice JAILER_ROLE: Jailed → Active, or → Exiting if the node had requested its exit (the
    /// exit request survives the jail, and the node leaves `requiredStake` again).
    function unjail(address node) external;

    /// @notice PARAMETER_ROLE: stake per node, 1 wei to 1e27 wei. Applies to later registrations and unbonds.
    function setMinStakePerNode(uint256 newMinStakePerNode) external;

    /// @notice EIP-712 digest a key signs to prove possession: NodeKey(node, key, operator).
    function nodeKeyDigest(address node, address key, address operator) external view returns (bytes32);

    /// @notice Everything stored about `node` (all zero for an unknown node).
    function getNode(address node) external view returns (Node memory);
    /// @notice `node`'s status; `None` if it was never registered.
    function statusOf(address node) external view returns (NodeStatus);
    /// @notice Where `node`'s earnings and rewards are paid (zero for an unknown node).
    function payoutOf(address node) external view returns (address);
    /// @notice The wallet that registered and manages `node`.
    function operatorOf(address node) external view returns (address);
    /// @notice `minStakePerNode × ` the number of `operator`'s nodes that are Active or Jailed.
    function requiredStake(address operator) external view returns (uint256);
    /// @notice Every node `operator` registered, in registration order (exited ones included).
    function nodesOf(address operator) external view returns (address[] memory);
    /// @notice Bonded stake required per live node.
    function minStakePerNode() external view returns (uint256);
    /// @notice The Staking contract read for bonded stake.
    function staking() external view returns (address);
}
