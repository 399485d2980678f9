import COpenSSL
import Foundation

/// A failure in a cryptographic operation, with OpenSSL's own reasons where it gave some.
public enum CryptoError: Error, CustomStringConvertible {
    /// An OpenSSL call failed; `reasons` is the drained error queue.
    case openSSL(operation: String, reasons: [String])
    /// An encrypted private key did not decrypt with the passphrase given.
    case wrongPassphrase(what: String)
    /// Input that is not what the operation expects, such as PEM without a certificate.
    case invalidInput(String)
    /// The CA signing policy rejected a CSR; the text names the check.
    case policyViolation(check: String, reason: String)
    /// A certificate did not verify against the trusted CA.
    case certificateRejected(String)

    public var description: String {
        switch self {
        case .openSSL(let operation, let reasons):
            if reasons.isEmpty {
                return "\(operation) failed"
            }
            return "\(operation) failed: \(reasons.joined(separator: "; "))"
        case .wrongPassphrase(let what):
            return "cannot decrypt \(what): wrong passphrase or password"
        case .invalidInput(let detail):
            return detail
        case .policyViolation(let check, let reason):
            return "CSR rejected by the CA policy (\(check)): \(reason)"
        case .certificateRejected(let reason):
            return "certificate rejected: \(reason)"
        }
    }

    /// Drains OpenSSL's error queue into an error for `operation`.
    static func drain(_ operation: String) -> CryptoError {
        .openSSL(operation: operation, reasons: OpenSSLErrorQueue.drain())
    }
}

/// OpenSSL's per-thread error queue.
public enum OpenSSLErrorQueue {
    /// Removes every queued error and returns their descriptions, oldest first.
    public static func drain() -> [String] {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            reasons.append(String(cString: buffer))
        }
        return reasons
    }

    /// Clears stale errors before a call whose failure will be drained.
    public static func clear() {
        ERR_clear_error()
    }
}

/// The OpenSSL library in use.
public enum OpenSSLInfo {
    /// The version text, for example `OpenSSL 3.0.19 27 Jan 2026`.
    public static var version: String {
        String(cString: OpenSSL_version(OPENSSL_VERSION))
    }
}

/// A BIO over memory, for PEM and DER in and out of OpenSSL.
final class MemoryBIO {
    let pointer: OpaquePointer

    init() throws {
        guard let bio = BIO_new(BIO_s_mem()) else { throw CryptoError.drain("BIO_new") }
        pointer = bio
    }

    /// A read-only BIO over a copy of `bytes`, owned by this object because
    /// BIO_new_mem_buf does not copy.
    init(_ bytes: [UInt8]) throws {
        let copy = UnsafeMutableRawBufferPointer.allocate(
            byteCount: max(bytes.count, 1), alignment: 1)
        bytes.withUnsafeBytes { copy.copyMemory(from: $0) }
        guard let bio = BIO_new_mem_buf(copy.baseAddress, Int32(bytes.count)) else {
            copy.deallocate()
            throw CryptoError.drain("BIO_new_mem_buf")
        }
        pointer = bio
        storage = copy
    }

    private var storage: UnsafeMutableRawBufferPointer?

    deinit {
        BIO_free(pointer)
        storage?.deallocate()
    }

    /// Everything written to the BIO so far.
    var bytes: [UInt8] {
        var data: UnsafeMutablePointer<CChar>?
        let count = sfts_BIO_get_mem_data(pointer, &data)
        guard count > 0, let data else { return [] }
        return data.withMemoryRebound(to: UInt8.self, capacity: count) {
            Array(UnsafeBufferPointer(start: $0, count: count))
        }
    }

    var string: String { String(decoding: bytes, as: UTF8.self) }
}
