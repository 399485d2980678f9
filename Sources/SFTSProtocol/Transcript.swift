import Foundation

/// An unambiguous byte string for HMAC and signature input: a label, then each field as a
/// 4-byte big-endian length followed by its bytes.
///
/// Both sides build the same transcript from values they saw, so a proof or signature covers
/// exactly those values and no field can be shifted into its neighbour.
public struct Transcript {
    public private(set) var bytes: [UInt8]

    public init(label: String) {
        bytes = []
        append(label)
    }

    public mutating func append(_ field: String) {
        append(Array(field.utf8))
    }

    public mutating func append(_ field: [UInt8]) {
        let length = UInt32(field.count)
        bytes.append(UInt8(truncatingIfNeeded: length >> 24))
        bytes.append(UInt8(truncatingIfNeeded: length >> 16))
        bytes.append(UInt8(truncatingIfNeeded: length >> 8))
        bytes.append(UInt8(truncatingIfNeeded: length))
        bytes.append(contentsOf: field)
    }

    public mutating func append(_ field: UInt64) {
        append(String(field))
    }
}

/// Transcripts that the protocol's proofs and signatures cover.
public enum SignedRecord {
    /// Builds the record a client signs for an upload: the stored name, size and SHA-256 of the
    /// body, and the id and timestamp of the `put` request that carried them.
    public static func upload(
        name: String, size: UInt64, sha256: String, requestID: String, timestamp: String
    ) -> [UInt8] {
        var transcript = Transcript(label: "sfts-upload-record-v1")
        transcript.append(name)
        transcript.append(size)
        transcript.append(sha256)
        transcript.append(requestID)
        transcript.append(timestamp)
        return transcript.bytes
    }

    /// Builds the record the server signs for a download: the name, size and SHA-256 it sent, the
    /// uploader it named in `get-ready` (empty when unknown), the id of the client's `get`
    /// request and the timestamp of the `get-record` frame.
    public static func download(
        name: String, size: UInt64, sha256: String, uploader: String, requestID: String, timestamp: String
    ) -> [UInt8] {
        var transcript = Transcript(label: "sfts-download-record-v1")
        transcript.append(name)
        transcript.append(size)
        transcript.append(sha256)
        transcript.append(uploader)
        transcript.append(requestID)
        transcript.append(timestamp)
        return transcript.bytes
    }

    /// Builds the AuthMessage of a login: both nonces, the verifier's parameters and the TLS channel
    /// binding, so a proof is good for this exchange on this connection only.
    public static func login(
        user: String, clientNonce: String, serverNonce: String, salt: [UInt8], iterations: Int,
        channelBinding: [UInt8]
    ) -> [UInt8] {
        var transcript = Transcript(label: "sfts-login-v1")
        transcript.append(user)
        transcript.append(clientNonce)
        transcript.append(serverNonce)
        transcript.append(salt)
        transcript.append(UInt64(iterations))
        transcript.append(channelBinding)
        return transcript.bytes
    }

    /// Builds the input of an enrollment proof. `role` is `client` or `server`, so neither side can
    /// reflect the other's proof; the server's proof also covers the CA certificate it sends.
    public static func enrollment(
        role: String, user: String, clientNonce: String, serverNonce: String,
        channelBinding: [UInt8], caFingerprint: [UInt8]
    ) -> [UInt8] {
        var transcript = Transcript(label: "sfts-enroll-\(role)-v1")
        transcript.append(user)
        transcript.append(clientNonce)
        transcript.append(serverNonce)
        transcript.append(channelBinding)
        transcript.append(caFingerprint)
        return transcript.bytes
    }
}
