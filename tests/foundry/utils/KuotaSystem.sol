// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Test} from "forge-std/Test.sol";
import {Vm} from "forge-std/Vm.sol";

import {KuotaToken} from "contracts/KuotaToken.sol";
import {NodeRegistry} from "contracts/NodeRegistry.sol";
import {PaymentEscrow} from "contracts/PaymentEscrow.sol";
import {ReceiptSettlement} from "contracts/ReceiptSettlement.sol";
import {RewardPool} from "contracts/RewardPool.sol";
import {Staking} from "contracts/Staking.sol";
import {IReceiptSettlement} from "contracts/interfaces/IReceiptSettlement.sol";
import {MockUSD} from "contracts/test/MockUSD.sol";

/// @notice The Kuota system deployed and wired as scripts/deploy.py does, with the parameters of the
/// Brownie state machine (tests/stateful/conftest.py): an odd emission (10 KUOTA + 7 wei) of which one
/// node may take 75 %, in 1-hour epochs, so the per-node cap and the pro-rata scaling both run.
abstract contract KuotaSystem is Test {
    uint256 internal constant TOKEN_CAP = 1e27;
    uint256 internal constant TOKEN_INITIAL_SUPPLY = 1e26;
    uint64 internal constant UNBONDING_PERIOD = 600;
    uint16 internal constant SLASH_REPORTER_BPS = 1_000;
    uint256 internal constant MIN_STAKE_PER_NODE = 1_000e18;
    uint64 internal constant THAWING_PERIOD = 600;
    uint64 internal constant EPOCH_LENGTH = 3_600;
    uint256 internal constant EMISSION_PER_EPOCH = 10e18 + 7;
    uint256 internal constant REWARD_PER_FEE_UNIT = 1e13;
    uint16 internal constant MAX_NODE_SHARE_BPS = 7_500;
    uint32 internal constant LATENCY_LOW_MS = 50;
    uint32 internal constant LATENCY_HIGH_MS = 500;
    uint16 internal constant LATENCY_FLOOR_BPS = 2_000;
    uint16 internal constant FEE_BPS = 500;

    MockUSD internal usd;
    KuotaToken internal kuota;
    Staking internal staking;
    NodeRegistry internal registry;
    PaymentEscrow internal escrow;
    RewardPool internal rewards;
    ReceiptSettlement internal settlement;

    address internal deployer = makeAddr("deployer");
    address internal treasury = makeAddr("treasury");
    address internal slasher = makeAddr("slasher");

    function _deploySystem() internal {
        vm.startPrank(deployer);
        usd = new MockUSD();
        kuota = new KuotaToken(deployer, TOKEN_CAP, TOKEN_INITIAL_SUPPLY, deployer);
        staking = new Staking(deployer, address(kuota), UNBONDING_PERIOD, SLASH_REPORTER_BPS);
        registry = new NodeRegistry(deployer, address(staking), MIN_STAKE_PER_NODE);
        staking.setRegistry(address(registry));
        escrow = new PaymentEscrow(deployer, address(usd), address(registry), treasury, THAWING_PERIOD);
        rewards = new RewardPool(
            deployer,
            address(kuota),
            address(registry),
            EPOCH_LENGTH,
            EMISSION_PER_EPOCH,
            REWARD_PER_FEE_UNIT,
            MAX_NODE_SHARE_BPS,
            LATENCY_LOW_MS,
            LATENCY_HIGH_MS,
            LATENCY_FLOOR_BPS
        );
        settlement = new ReceiptSettlement(deployer, address(escrow), address(registry), address(rewards), FEE_BPS);
        kuota.grantRole(kuota.MINTER_ROLE(), address(rewards));
        escrow.grantRole(escrow.SETTLEMENT_ROLE(), address(settlement));
        rewards.grantRole(rewards.SETTLEMENT_ROLE(), address(settlement));
        staking.grantRole(staking.SLASHER_ROLE(), slasher);
        registry.grantRole(registry.JAILER_ROLE(), slasher);
        vm.stopPrank();
    }

    /// @dev Gives `operator` KUOTA from the deployer and bonds `amount` of it.
    function _stake(address operator, uint256 amount) internal {
        vm.prank(deployer);
        kuota.transfer(operator, amount);
        vm.startPrank(operator);
        kuota.approve(address(staking), amount);
        staking.stake(amount);
        vm.stopPrank();
    }

    /// @dev Registers the node whose key is `nodeKey` under `operator` (who must have the stake),
    /// with the node-key signature the registry checks.
    function _register(address operator, uint256 nodeKey, address payout) internal returns (address node) {
        node = vm.addr(nodeKey);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(nodeKey, registry.nodeKeyDigest(node, node, operator));
        vm.prank(operator);
        registry.register(node, payout, 1e6, 1_000, "eu-west", "", abi.encodePacked(r, s, v));
    }

    /// @dev Mints `amount` mUSD to `consumer` and deposits it into escrow.
    function _fund(address consumer, uint256 amount) internal {
        usd.mint(consumer, amount);
        vm.startPrank(consumer);
        usd.approve(address(escrow), amount);
        escrow.deposit(amount);
        vm.stopPrank();
    }
}

/// @notice Receipts as the Python client builds them: EIP-712 signed by the consumer over the digest
/// ReceiptSettlement computes (its `hashReceipt` view), and packed for `settleManyPacked` in the layout
/// of nodeclient/receipts/packing.py.
library ReceiptKit {
    function sign(Vm vm, ReceiptSettlement settlement, uint256 consumerKey, IReceiptSettlement.Receipt memory receipt)
        internal
        view
        returns (bytes memory)
    {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(consumerKey, settlement.hashReceipt(receipt));
        return abi.encodePacked(r, s, v);
    }

    /// @dev consumer 20 | sessionId 32 | cumulativeBytes 16 | cumulativeAmount 16 | latencyMs 4 |
    /// issuedAt 8 | signature 65 (r, s, v), big-endian, no padding; the node is not packed.
    function pack(IReceiptSettlement.Receipt memory receipt, bytes memory signature)
        internal
        pure
        returns (bytes memory)
    {
        require(signature.length == 65, "ReceiptKit: signature is not 65 bytes");
        return abi.encodePacked(
            receipt.consumer,
            receipt.sessionId,
            uint128(receipt.cumulativeBytes),
            uint128(receipt.cumulativeAmount),
            receipt.latencyMs,
            receipt.issuedAt,
            signature
        );
    }
}
