// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IReceiptSettlement} from "../interfaces/IReceiptSettlement.sol";

/// @title ReceiptEncoding
/// @notice The EIP-712 `Receipt` type and the 161-byte packed receipt of `settleManyPacked`, shared by
/// ReceiptSettlement and the gas-floor probes (contracts/test), so both decode receipts one way.
library ReceiptEncoding {
    /// @notice keccak256 of the EIP-712 type the consumer signs.
    bytes32 internal constant TYPEHASH = keccak256(
        "Receipt(address consumer,address node,bytes32 sessionId,uint256 cumulativeBytes,uint256 cumulativeAmount,uint32 latencyMs,uint64 issuedAt)"
    );

    /// @notice Bytes per packed receipt, big-endian, no padding: consumer 20, sessionId 32,
    /// cumulativeBytes 16, cumulativeAmount 16, latencyMs 4, issuedAt 8, then the signature r 32, s 32, v 1.
    uint256 internal constant PACKED_LENGTH = 161;

    /// @notice Unpacks the receipt at `item` (PACKED_LENGTH bytes) into `words`, the EIP-712 encoding
    /// `[TYPEHASH, consumer, node, sessionId, cumulativeBytes, cumulativeAmount, latencyMs, issuedAt]`
    /// whose words 0 and 2 the caller set once per batch (the node is not repeated per receipt), and
    /// returns its struct hash.
    /// @dev Each field is read at its own width, so none can carry dirty high bits and both cumulative
    /// values are below 2^128 by construction. `words` is reused for every receipt of a batch: nothing
    /// is allocated per receipt. The caller guarantees `item.length == PACKED_LENGTH` (a slice of it).
    function unpack(bytes32[8] memory words, bytes calldata item) internal pure returns (bytes32 structHash) {
        assembly ("memory-safe") {
            let o := item.offset
            mstore(add(words, 0x20), shr(96, calldataload(o))) // consumer
            mstore(add(words, 0x60), calldataload(add(o, 20))) // sessionId
            mstore(add(words, 0x80), shr(128, calldataload(add(o, 52)))) // cumulativeBytes
            mstore(add(words, 0xa0), shr(128, calldataload(add(o, 68)))) // cumulativeAmount
            mstore(add(words, 0xc0), shr(224, calldataload(add(o, 84)))) // latencyMs
            mstore(add(words, 0xe0), shr(192, calldataload(add(o, 88)))) // issuedAt
            structHash := keccak256(words, 0x100)
        }
    }

    /// @notice The packed receipt's signature as ECDSA.recover takes it.
    function signature(bytes calldata item) internal pure returns (uint8 v, bytes32 r, bytes32 s) {
        assembly ("memory-safe") {
            r := calldataload(add(item.offset, 96))
            s := calldataload(add(item.offset, 128))
            v := byte(0, calldataload(add(item.offset, 160)))
        }
    }

    /// @notice Emits `IReceiptSettlement.ReceiptSettled` for a packed receipt (in the calling contract:
    /// internal library code runs in its frame), byte-identical to Solidity's `emit`: the four static
    /// fields from the receipt's EIP-712 `words`, the signature (r, s, v: contiguous in the packed
    /// layout) copied from calldata, the data laid out in scratch memory past the free pointer so a
    /// batch does not grow memory per receipt.
    function emitSettled(
        bytes32[8] memory words,
        bytes32 digest,
        bytes calldata item,
        uint256 paid,
        uint256 fee
    ) internal {
        bytes32 topic0 = IReceiptSettlement.ReceiptSettled.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, mload(add(words, 0x80))) // cumulativeBytes
            mstore(add(ptr, 0x20), mload(add(words, 0xa0))) // cumulativeAmount
            mstore(add(ptr, 0x40), mload(add(words, 0xc0))) // latencyMs
            mstore(add(ptr, 0x60), mload(add(words, 0xe0))) // issuedAt
            mstore(add(ptr, 0x80), digest)
            mstore(add(ptr, 0xa0), 0x100) // offset of `signature` from the start of the data
            mstore(add(ptr, 0xc0), paid)
            mstore(add(ptr, 0xe0), fee)
            mstore(add(ptr, 0x100), 65)
            mstore(add(ptr, 0x160), 0)
            calldatacopy(add(ptr, 0x120), add(item.offset, 96), 65)
            log4(ptr, 0x180, topic0, mload(add(words, 0x20)), mload(add(words, 0x40)), mload(add(words, 0x60)))
        }
    }
}
