// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Test} from "forge-std/Test.sol";
import {Vm} from "forge-std/Vm.sol";

import {IReceiptSettlement} from "contracts/interfaces/IReceiptSettlement.sol";
import {ReceiptEncoding} from "contracts/libraries/ReceiptEncoding.sol";

import {ReceiptKit} from "../utils/KuotaSystem.sol";

/// @notice Runs the library on real calldata, as settleManyPacked does, and emits the event both ways.
contract ReceiptEncodingHarness {
    function decode(address node, bytes calldata item)
        external
        pure
        returns (bytes32[8] memory words, bytes32 structHash, uint8 v, bytes32 r, bytes32 s)
    {
        words[0] = ReceiptEncoding.TYPEHASH;
        words[2] = bytes32(uint256(uint160(node)));
        structHash = ReceiptEncoding.unpack(words, item);
        (v, r, s) = ReceiptEncoding.signature(item);
    }

    function emitPacked(address node, bytes calldata item, bytes32 digest, uint256 paid, uint256 fee) external {
        bytes32[8] memory words;
        words[0] = ReceiptEncoding.TYPEHASH;
        words[2] = bytes32(uint256(uint160(node)));
        ReceiptEncoding.unpack(words, item);
        ReceiptEncoding.emitSettled(words, digest, item, paid, fee);
    }

    function emitSolidity(
        IReceiptSettlement.Receipt calldata receipt,
        bytes32 digest,
        bytes calldata signature,
        uint256 paid,
        uint256 fee
    ) external {
        emit IReceiptSettlement.ReceiptSettled(
            receipt.consumer,
            receipt.node,
            receipt.sessionId,
            receipt.cumulativeBytes,
            receipt.cumulativeAmount,
            receipt.latencyMs,
            receipt.issuedAt,
            digest,
            signature,
            paid,
            fee
        );
    }
}

/// @notice Stateless properties of the 161-byte packed receipt: what the client packs (in the layout
/// of nodeclient/receipts/packing.py) decodes field for field into the EIP-712 encoding the consumer
/// signed, and the hand-written event is byte-identical to Solidity's `emit`.
contract ReceiptEncodingFuzzTest is Test {
    ReceiptEncodingHarness private harness;

    function setUp() public {
        harness = new ReceiptEncodingHarness();
    }

    function _receipt(
        address consumer,
        address node,
        bytes32 sessionId,
        uint128 cumulativeBytes,
        uint128 cumulativeAmount,
        uint32 latencyMs,
        uint64 issuedAt
    ) private pure returns (IReceiptSettlement.Receipt memory) {
        return IReceiptSettlement.Receipt(consumer, node, sessionId, cumulativeBytes, cumulativeAmount, latencyMs, issuedAt);
    }

    /// Every field of a receipt the client packs comes back at its own width, and the struct hash is
    /// the EIP-712 one computed the standard way (abi.encode of the type hash and the fields).
    function testFuzz_packedReceiptRoundTrips(IReceiptSettlement.Receipt memory receipt, bytes32 r, bytes32 s, uint8 v)
        public
        view
    {
        // The packed layout holds both cumulative values in 16 bytes (settle rejects larger ones too).
        receipt.cumulativeBytes = uint128(receipt.cumulativeBytes);
        receipt.cumulativeAmount = uint128(receipt.cumulativeAmount);
        bytes memory packed = ReceiptKit.pack(receipt, abi.encodePacked(r, s, v));
        assertEq(packed.length, ReceiptEncoding.PACKED_LENGTH, "packed length");

        (bytes32[8] memory words, bytes32 structHash,,,) = harness.decode(receipt.node, packed);
        assertEq(words[0], ReceiptEncoding.TYPEHASH, "type hash");
        assertEq(words[1], bytes32(uint256(uint160(receipt.consumer))), "consumer (no dirty high bits)");
        assertEq(words[2], bytes32(uint256(uint160(receipt.node))), "node");
        assertEq(words[3], receipt.sessionId, "sessionId");
        assertEq(uint256(words[4]), receipt.cumulativeBytes, "cumulativeBytes");
        assertEq(uint256(words[5]), receipt.cumulativeAmount, "cumulativeAmount");
        assertEq(uint256(words[6]), receipt.latencyMs, "latencyMs");
        assertEq(uint256(words[7]), receipt.issuedAt, "issuedAt");
        assertEq(structHash, _structHash(receipt), "struct hash");

        (,, uint8 gotV, bytes32 gotR, bytes32 gotS) = harness.decode(receipt.node, packed);
        assertEq(gotR, r, "r");
        assertEq(gotS, s, "s");
        assertEq(gotV, v, "v");
    }

    /// Receipts packed back to back decode independently: no field leaks into its neighbour.
    function testFuzz_adjacentPackedReceiptsDecodeIndependently(
        bytes32 seedA,
        bytes32 seedB,
        address node
    ) public view {
        IReceiptSettlement.Receipt memory a = _fromSeed(seedA, node);
        IReceiptSettlement.Receipt memory b = _fromSeed(seedB, node);
        bytes memory sigA = abi.encodePacked(keccak256(abi.encode(seedA, 1)), keccak256(abi.encode(seedA, 2)), uint8(27));
        bytes memory sigB = abi.encodePacked(keccak256(abi.encode(seedB, 1)), keccak256(abi.encode(seedB, 2)), uint8(28));
        bytes memory both = bytes.concat(ReceiptKit.pack(a, sigA), ReceiptKit.pack(b, sigB));
        (, bytes32 hashA,,,) = harness.decode(node, _slice(both, 0));
        (bytes32[8] memory wordsB, bytes32 hashB,, bytes32 rB,) = harness.decode(node, _slice(both, 161));
        assertEq(hashA, _structHash(a), "first receipt");
        assertEq(hashB, _structHash(b), "second receipt");
        assertEq(uint256(wordsB[5]), b.cumulativeAmount, "second amount");
        assertEq(rB, keccak256(abi.encode(seedB, 1)), "second r");
    }

    /// ReceiptEncoding.emitSettled writes the same topics and data as `emit ReceiptSettled(...)`.
    function testFuzz_packedEventIsByteIdenticalToSolidityEmit(
        bytes32 seed,
        address node,
        bytes32 digest,
        uint256 paid,
        uint256 fee
    ) public {
        IReceiptSettlement.Receipt memory receipt = _fromSeed(seed, node);
        bytes memory sig = abi.encodePacked(keccak256(abi.encode(seed, 1)), keccak256(abi.encode(seed, 2)), uint8(27));
        vm.recordLogs();
        harness.emitPacked(node, ReceiptKit.pack(receipt, sig), digest, paid, fee);
        harness.emitSolidity(receipt, digest, sig, paid, fee);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 2);
        assertEq(logs[0].topics.length, 4);
        assertEq(logs[0].topics[0], IReceiptSettlement.ReceiptSettled.selector);
        for (uint256 i; i < 4; ++i) {
            assertEq(logs[0].topics[i], logs[1].topics[i], "topic");
        }
        assertEq(logs[0].data, logs[1].data, "data");
    }

    function _fromSeed(bytes32 seed, address node) private pure returns (IReceiptSettlement.Receipt memory) {
        return _receipt(
            address(uint160(uint256(keccak256(abi.encode(seed, "consumer"))))),
            node,
            keccak256(abi.encode(seed, "session")),
            uint128(uint256(keccak256(abi.encode(seed, "bytes")))),
            uint128(uint256(keccak256(abi.encode(seed, "amount")))),
            uint32(uint256(keccak256(abi.encode(seed, "latency")))),
            uint64(uint256(keccak256(abi.encode(seed, "issuedAt"))))
        );
    }

    function _structHash(IReceiptSettlement.Receipt memory r) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                ReceiptEncoding.TYPEHASH,
                r.consumer,
                r.node,
                r.sessionId,
                r.cumulativeBytes,
                r.cumulativeAmount,
                r.latencyMs,
                r.issuedAt
            )
        );
    }

    function _slice(bytes memory data, uint256 start) private pure returns (bytes memory out) {
        out = new bytes(ReceiptEncoding.PACKED_LENGTH);
        for (uint256 i; i < out.length; ++i) {
            out[i] = data[start + i];
        }
    }
}
