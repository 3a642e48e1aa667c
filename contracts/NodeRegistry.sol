// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {INodeRegistry} from "./interfaces/INodeRegistry.sol";
import {IStaking} from "./interfaces/IStaking.sol";

/// @title NodeRegistry
/// @notice Nodes, their operators, payout addresses, prices and status.
contract NodeRegistry is INodeRegistry, AccessControl, EIP712 {
    bytes32 public constant PARAMETER_ROLE = keccak256("PARAMETER_ROLE");
    bytes32 public constant JAILER_ROLE = keccak256("JAILER_ROLE");
    bytes32 public constant NODE_KEY_TYPEHASH = keccak256("NodeKey(address node,address key,address operator)");
    uint256 public constant MAX_REGION_LENGTH = 32;
    uint256 public constant MAX_METADATA_URI_LENGTH = 256;
    uint256 public constant MAX_REASON_LENGTH = 256;
    uint256 public constant MAX_MIN_STAKE_PER_NODE = 1e27;

    /// @dev Storage layout: the first slot holds everything settlement reads (operator, status),
    /// the second the payout address that escrow and rewards read.
    struct NodeRecord {
        address operator;
        uint64 registeredAt;
        NodeStatus status;
        // Set by requestExit and never cleared: unjail returns an exiting node to Exiting, not Active.
        bool exitRequested;
        address payout;
        uint96 pricePerGiB;
        address signingKey;
        uint64 capacityMbps;
        string region;
        string metadataURI;
    }

    IStaking private immutable _staking;

    mapping(address node => NodeRecord) private _nodes;
    mapping(address operator => address[]) private _nodesOf;
    mapping(address operator => uint256) private _liveNodeCount;
    uint256 private _minStakePerNode;

    /// @param admin Receives DEFAULT_ADMIN_ROLE and PARAMETER_ROLE (JAILER_ROLE is granted by the deployment).
    constructor(address admin, address staking_, uint256 minStakePerNode_) EIP712("Kuota NodeRegistry", "1") {
        if (admin == address(0)) revert RegistryZeroAddress("admin");
        if (staking_ == address(0)) revert RegistryZeroAddress("staking");
        _checkMinStake(minStakePerNode_);
        _staking = IStaking(staking_);
        _minStakePerNode = minStakePerNode_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PARAMETER_ROLE, admin);
    }

    /// @inheritdoc INodeRegistry
    function register(
        address node,
        address payout,
        uint96 pricePerGiB,
        uint64 capacityMbps,
        string calldata region,
        string calldata metadataURI,
        bytes calldata nodeKeySignature
    ) external {
        if (node == address(0)) revert RegistryZeroAddress("node");
        if (node == msg.sender) revert RegistryNodeKeyIsOperator(node);
        if (_nodes[node].status != NodeStatus.None) revert RegistryNodeAlreadyRegistered(node);
        _checkFields(payout, region, metadataURI);
        _checkKeySignature(node, node, msg.sender, nodeKeySignature);

        uint256 live = _liveNodeCount[msg.sender] + 1;
        uint256 required = _minStakePerNode * live;
        uint256 staked = _staking.bondedOf(msg.sender);
        if (staked < required) revert RegistryInsufficientStake(msg.sender, staked, required);

        NodeRecord storage record = _nodes[node];
        record.operator = msg.sender;
        record.registeredAt = uint64(block.timestamp);
        record.status = NodeStatus.Active;
        record.payout = payout;
        record.pricePerGiB = pricePerGiB;
        record.signingKey = node;
        record.capacityMbps = capacityMbps;
        record.region = region;
        record.metadataURI = metadataURI;
        _liveNodeCount[msg.sender] = live;
        _nodesOf[msg.sender].push(node);
        emit NodeRegistered(node, msg.sender, payout, pricePerGiB, capacityMbps, region, metadataURI);
    }

    /// @inheritdoc INodeRegistry
    function update(
        address node,
        address payout,
        uint96 pricePerGiB,
        uint64 capacityMbps,
        string calldata region,
        string calldata metadataURI
    ) external {
        NodeRecord storage record = _operatorRecord(node);
        _checkFields(payout, region, metadataURI);
        record.payout = payout;
        record.pricePerGiB = pricePerGiB;
        record.capacityMbps = capacityMbps;
        record.region = region;
        record.metadataURI = metadataURI;
        emit NodeUpdated(node, payout, pricePerGiB, capacityMbps, region, metadataURI);
    }

    /// @inheritdoc INodeRegistry
    function rotateKey(address node, address newKey, bytes calldata newKeySignature) external {
        NodeRecord storage record = _operatorRecord(node);
        if (newKey == address(0)) revert RegistryZeroAddress("newKey");
        if (newKey == msg.sender) revert RegistryNodeKeyIsOperator(newKey);
        _checkKeySignature(node, newKey, msg.sender, newKeySignature);
        address oldKey = record.signingKey;
        record.signingKey = newKey;
        emit NodeKeyRotated(node, oldKey, newKey);
    }

    /// @inheritdoc INodeRegistry
    function requestExit(address node) external {
        NodeRecord storage record = _operatorRecord(node);
        if (record.status != NodeStatus.Active) revert RegistryInvalidStatus(node, uint8(record.status));
        record.status = NodeStatus.Exiting;
        record.exitRequested = true;
        _liveNodeCount[msg.sender] -= 1;
        emit NodeExitRequested(node, msg.sender);
    }

    /// @inheritdoc INodeRegistry
    function jail(address node, string calldata reason) external onlyRole(JAILER_ROLE) {
        NodeRecord storage record = _nodes[node];
        NodeStatus status = record.status;
        if (status == NodeStatus.None) revert RegistryNodeNotRegistered(node);
        if (status == NodeStatus.Jailed) revert RegistryInvalidStatus(node, uint8(status));
        if (bytes(reason).length > MAX_REASON_LENGTH) {
            revert RegistryStringTooLong("reason", bytes(reason).length, MAX_REASON_LENGTH);
        }
        // A jailed node counts toward its operator's required stake again: exiting does not escape jail.
        if (status == NodeStatus.Exiting) _liveNodeCount[record.operator] += 1;
        record.status = NodeStatus.Jailed;
        emit NodeJailed(node, reason);
    }

    /// @inheritdoc INodeRegistry
    function unjail(address node) external onlyRole(JAILER_ROLE) {
        NodeRecord storage record = _nodes[node];
        if (record.status == NodeStatus.None) revert RegistryNodeNotRegistered(node);
        if (record.status != NodeStatus.Jailed) revert RegistryInvalidStatus(node, uint8(record.status));
        if (record.exitRequested) {
            // The exit request survives the jail: back to Exiting, and out of the stake requirement again.
            record.status = NodeStatus.Exiting;
            _liveNodeCount[record.operator] -= 1;
        } else {
            record.status = NodeStatus.Active;
        }
        emit NodeUnjailed(node);
    }

    /// @inheritdoc INodeRegistry
    function setMinStakePerNode(uint256 minStakePerNode_) external onlyRole(PARAMETER_ROLE) {
        _checkMinStake(minStakePerNode_);
        uint256 oldValue = _minStakePerNode;
        _minStakePerNode = minStakePerNode_;
        emit ParameterUpdated("minStakePerNode", oldValue, minStakePerNode_);
    }

    /// @inheritdoc INodeRegistry
    function nodeKeyDigest(address node, address key, address operator) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(NODE_KEY_TYPEHASH, node, key, operator)));
    }

    /// @inheritdoc INodeRegistry
    function getNode(address node) external view returns (Node memory) {
        NodeRecord storage record = _nodes[node];
        return Node({
            operator: record.operator,
            payout: record.payout,
            signingKey: record.signingKey,
            pricePerGiB: record.pricePerGiB,
            capacityMbps: record.capacityMbps,
            registeredAt: record.registeredAt,
            status: record.status,
            region: record.region,
            metadataURI: record.metadataURI
        });
    }

    /// @inheritdoc INodeRegistry
    function statusOf(address node) external view returns (NodeStatus) {
        return _nodes[node].status;
    }

    /// @inheritdoc INodeRegistry
    function payoutOf(address node) external view returns (address) {
        return _nodes[node].payout;
    }

    /// @inheritdoc INodeRegistry
    function operatorOf(address node) external view returns (address) {
        return _nodes[node].operator;
    }

    /// @inheritdoc INodeRegistry
    function requiredStake(address operator) external view returns (uint256) {
        return _minStakePerNode * _liveNodeCount[operator];
    }

    /// @inheritdoc INodeRegistry
    function nodesOf(address operator) external view returns (address[] memory) {
        return _nodesOf[operator];
    }

    /// @inheritdoc INodeRegistry
    function minStakePerNode() external view returns (uint256) {
        return _minStakePerNode;
    }

    /// @inheritdoc INodeRegistry
    function staking() external view returns (address) {
        return address(_staking);
    }

    function _operatorRecord(address node) private view returns (NodeRecord storage record) {
        record = _nodes[node];
        if (record.status == NodeStatus.None) revert RegistryNodeNotRegistered(node);
        if (record.operator != msg.sender) revert RegistryNotNodeOperator(node, msg.sender, record.operator);
    }

    function _checkFields(address payout, string calldata region, string calldata metadataURI) private pure {
        if (payout == address(0)) revert RegistryZeroAddress("payout");
        if (bytes(region).length > MAX_REGION_LENGTH) {
            revert RegistryStringTooLong("region", bytes(region).length, MAX_REGION_LENGTH);
        }
        if (bytes(metadataURI).length > MAX_METADATA_URI_LENGTH) {
            revert RegistryStringTooLong("metadataURI", bytes(metadataURI).length, MAX_METADATA_URI_LENGTH);
        }
    }

    function _checkKeySignature(address node, address key, address operator, bytes calldata signature) private view {
        address recovered = ECDSA.recover(nodeKeyDigest(node, key, operator), signature);
        if (recovered != key) revert RegistryInvalidKeySignature(key, recovered);
    }

    function _checkMinStake(uint256 value) private pure {
        if (value == 0 || value > MAX_MIN_STAKE_PER_NODE) {
            revert RegistryParameterOutOfBounds("minStakePerNode", value, 1, MAX_MIN_STAKE_PER_NODE);
        }
    }
}
