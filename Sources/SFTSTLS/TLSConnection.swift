import COpenSSL
import Foundation
import SFTSCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// A TLS failure, sorted by what the user can do about it.
public enum TLSError: Error, CustomStringConvertible {
    /// The TLS settings or the certificate and key could not be loaded.
    case configuration(String)
    /// This side rejected the peer's certificate.
    case peerCertificateRejected(String)
    /// The peer rejected this side's certificate (an alert such as unknown CA, bad,
    /// expired or revoked certificate, or certificate required).
    case certificateRejectedByPeer(String)
    /// The handshake failed for another reason, such as no common cipher suite.
    case handshakeFailed(String)
    /// The peer stopped responding.
    case timedOut(String)
    /// The peer closed the connection without a TLS close_notify, or reset it.
    case connectionLost(String)
    /// Channel binding is unavailable, as for TLS 1.2 without extended master secret.
    case channelBindingUnavailable(String)

    public var description: String {
        switch self {
        case .configuration(let detail): return "TLS configuration failed: \(detail)"
        case .peerCertificateRejected(let detail): return "peer certificate rejected: \(detail)"
        case .certificateRejectedByPeer(let detail):
            return "the peer rejected our certificate: \(detail)"
        case .handshakeFailed(let detail): return "TLS handshake failed: \(detail)"
        case .timedOut(let detail): return "\(detail) timed out"
        case .connectionLost(let detail): return "connection lost: \(detail)"
        case .channelBindingUnavailable(let detail): return "channel binding unavailable: \(detail)"
        }
    }
}

/// A TLS connection over a blocking TCP socket, which it owns and closes.
///
/// Reads and writes block; ``setTimeouts(receive:send:)`` bounds each wait. One thread uses
/// a connection at a time, except ``abort()``, which any thread may call to cut it off.
public final class TLSConnection: @unchecked Sendable {
    private let ssl: OpaquePointer
    private let context: TLSContext
    public let descriptor: Int32
    private var isClosed = false
    private let closeLock = NSLock()

    /// Wraps `descriptor`; the connection closes it.
    ///
    /// - Parameter expectedHost: For clients that verify the server: the DNS name or IP
    ///   address the server certificate must name in its SANs.
    public init(context: TLSContext, descriptor: Int32, expectedHost: String? = nil) throws {
        OpenSSLErrorQueue.clear()
        guard let ssl = SSL_new(context.pointer) else {
            Glibc.close(descriptor)
            throw TLSError.configuration("SSL_new failed: \(OpenSSLErrorQueue.drain())")
        }
        self.ssl = ssl
        self.context = context
        self.descriptor = descriptor
        guard SSL_set_fd(ssl, descriptor) == 1 else {
            throw TLSError.configuration("SSL_set_fd failed: \(OpenSSLErrorQueue.drain())")
        }
        if let expectedHost, context.verifiesPeer {
            let isAddress = expectedHost.contains(":") || expectedHost.allSatisfy { $0.isNumber || $0 == "." }
            if isAddress {
                guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), expectedHost) == 1 else {
                    throw TLSError.configuration("invalid IP address \(expectedHost)")
                }
            } else {
                guard SSL_set1_host(ssl, expectedHost) == 1,
                    sfts_SSL_set_tlsext_host_name(ssl, expectedHost) == 1
                else {
                    throw TLSError.configuration("invalid host name \(expectedHost)")
                }
            }
        }
    }

    deinit {
        SSL_free(ssl)
        closeDescriptor()
    }

    /// Bounds each blocking read and write.
    public func setTimeouts(receive: TimeInterval, send: TimeInterval) {
        SocketOptions.setTimeouts(descriptor, receive: receive, send: send)
    }

    /// Runs the server side of the handshake.
    public func accept() throws {
        OpenSSLErrorQueue.clear()
        let result = SSL_accept(ssl)
        if result != 1 {
            throw handshakeError(result)
        }
    }

    /// Runs the client side of the handshake.
    public func connect() throws {
        OpenSSLErrorQueue.clear()
        let result = SSL_connect(ssl)
        if result != 1 {
            throw handshakeError(result)
        }
    }

    /// Reads up to `buffer.count` bytes, at most one TLS record. Returns 0 when the peer
    /// closed the connection with close_notify.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard buffer.count > 0 else { return 0 }
        OpenSSLErrorQueue.clear()
        var count = 0
        if SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &count) == 1 {
            return count
        }
        let error = SSL_get_error(ssl, 0)
        if error == SSL_ERROR_ZERO_RETURN {
            return 0
        }
        throw ioError(error, while: "reading")
    }

    /// Writes the whole buffer.
    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < buffer.count {
            OpenSSLErrorQueue.clear()
            var written = 0
            if SSL_write_ex(ssl, buffer.baseAddress! + offset, buffer.count - offset, &written) != 1 {
                let error = ioError(SSL_get_error(ssl, 0), while: "writing")
                if case .connectionLost = error, let alert = pendingCertificateAlert() {
                    throw alert
                }
                throw error
            }
            offset += written
        }
    }

    /// Reads what the peer sent before it hung up, looking for an alert that rejected our
    /// certificate.
    ///
    /// Under TLS 1.3 a server that rejects the client certificate sends its alert and closes
    /// while the client may already be writing its first request. That write fails with a
    /// reset, but the alert is still waiting in the receive buffer.
    private func pendingCertificateAlert() -> TLSError? {
        var byte: UInt8 = 0
        var count = 0
        OpenSSLErrorQueue.clear()
        guard SSL_read_ex(ssl, &byte, 1, &count) != 1 else { return nil }
        if case .certificateRejectedByPeer(let reason) = ioError(SSL_get_error(ssl, 0), while: "reading") {
            return .certificateRejectedByPeer(reason)
        }
        return nil
    }

    /// Exports the tls-exporter channel binding of RFC 9266: 32 bytes of keying material with
    /// the label `EXPORTER-Channel-Binding` and no context.
    ///
    /// Under TLS 1.2 it is unique to the connection only with the extended master secret
    /// (RFC 7627), so it is refused without it.
    public func channelBinding() throws -> [UInt8] {
        if SSL_version(ssl) == TLS1_2_VERSION && sfts_SSL_get_extms_support(ssl) != 1 {
            throw TLSError.channelBindingUnavailable(
                "the TLS 1.2 peer did not negotiate the extended master secret")
        }
        var output = [UInt8](repeating: 0, count: 32)
        let label = "EXPORTER-Channel-Binding"
        guard
            SSL_export_keying_material(ssl, &output, output.count, label, label.utf8.count, nil, 0, 0)
                == 1
        else {
            throw TLSError.channelBindingUnavailable(OpenSSLErrorQueue.drain().joined(separator: "; "))
        }
        return output
    }

    /// The certificate the peer presented, if any.
    public var peerCertificate: Certificate? {
        guard let certificate = SSL_get1_peer_certificate(ssl) else { return nil }
        return Certificate(taking: certificate)
    }

    /// The negotiated protocol version, for example `TLSv1.3`.
    public var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    /// The negotiated cipher suite in OpenSSL's naming.
    public var cipherSuite: String {
        guard let cipher = SSL_get_current_cipher(ssl) else { return "none" }
        return String(cString: SSL_CIPHER_get_name(cipher))
    }

    /// Sends close_notify, without waiting for the peer's, and closes the socket.
    public func close() {
        OpenSSLErrorQueue.clear()
        SSL_shutdown(ssl)
        OpenSSLErrorQueue.clear()
        closeDescriptor()
    }

    /// Cuts the connection off from any thread: a read or write blocked on it fails at once.
    /// The descriptor stays open until ``close()`` or deinit, so it cannot be reused meanwhile.
    public func abort() {
        shutdown(descriptor, Int32(SHUT_RDWR))
    }

    private func closeDescriptor() {
        closeLock.lock()
        defer { closeLock.unlock() }
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(descriptor)
    }

    private func handshakeError(_ result: Int32) -> TLSError {
        let error = SSL_get_error(ssl, result)
        let savedErrno = errno
        let reasons = OpenSSLErrorQueue.drain()
        let verifyResult = SSL_get_verify_result(ssl)
        if verifyResult != Int(X509_V_OK) {
            return .peerCertificateRejected(
                String(cString: X509_verify_cert_error_string(verifyResult)))
        }
        if let alert = certificateAlert(in: reasons) {
            return .certificateRejectedByPeer(alert)
        }
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_SYSCALL)
            && (savedErrno == EAGAIN || savedErrno == EWOULDBLOCK)
        {
            return .timedOut("the TLS handshake")
        }
        if error == SSL_ERROR_SYSCALL || reasons.isEmpty {
            let detail = savedErrno != 0 ? String(cString: strerror(savedErrno)) : "the peer closed the connection"
            return .connectionLost("during the TLS handshake: \(detail)")
        }
        return .handshakeFailed(reasons.joined(separator: "; "))
    }

    private func ioError(_ error: Int32, while action: String) -> TLSError {
        let savedErrno = errno
        let reasons = OpenSSLErrorQueue.drain()
        if let alert = certificateAlert(in: reasons) {
            // Under TLS 1.3 the server checks the client certificate after the client's
            // handshake has finished, so its rejection arrives on the first read.
            return .certificateRejectedByPeer(alert)
        }
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_SYSCALL)
            && (savedErrno == EAGAIN || savedErrno == EWOULDBLOCK)
        {
            return .timedOut(action)
        }
        if error == SSL_ERROR_SYSCALL {
            let detail = savedErrno != 0 ? String(cString: strerror(savedErrno)) : "unexpected end of stream"
            return .connectionLost("\(action): \(detail)")
        }
        if reasons.contains(where: { $0.contains("unexpected eof") }) {
            return .connectionLost("\(action): the peer closed the connection without close_notify")
        }
        return .connectionLost("\(action): \(reasons.joined(separator: "; "))")
    }

    /// Finds an alert by which the peer rejected our certificate.
    private func certificateAlert(in reasons: [String]) -> String? {
        let markers = [
            "alert unknown ca", "alert bad certificate", "alert certificate required",
            "alert certificate expired", "alert certificate revoked", "alert certificate unknown",
            "alert unsupported certificate", "alert access denied",
        ]
        for reason in reasons {
            for marker in markers where reason.contains(marker) {
                return String(marker.dropFirst("alert ".count))
            }
        }
        return nil
    }
}
