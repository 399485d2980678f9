import Foundation
import SFTSCrypto
import SFTSLogging
import SFTSProtocol
import SFTSTLS

/// The parts of a connection that both services share: the handshake under a deadline, frame
/// I/O under the idle timeout, request checks and error reporting.
class Session {
    let services: ServerServices
    /// The keys and certificates this connection started with.
    let credentials: ServerCredentials
    let connection: TLSConnection
    let peer: PeerInfo
    let channel: FrameChannel
    let service: String
    private let openedAt = Date()

    var logger: Logger { services.logger }
    var limits: ServerLimits { services.configuration.limits }

    init(
        services: ServerServices, credentials: ServerCredentials, connection: TLSConnection, peer: PeerInfo,
        service: String
    ) {
        self.services = services
        self.credentials = credentials
        self.connection = connection
        self.peer = peer
        self.service = service
        channel = FrameChannel(
            maxFrameBytes: services.configuration.limits.maxFrameBytes,
            read: { try connection.read(into: $0) }, write: { try connection.write($0) })
    }

    func logEvent(_ level: LogLevel, _ event: String, _ extra: [(String, String)] = []) {
        var fields: [(String, String)] = [
            ("service", service), ("connection", String(peer.connectionID)),
            ("peer.address", peer.address),
        ]
        fields.append(contentsOf: extra)
        logger.log(level, event, fields: fields)
    }

    /// The idle timeout in whole seconds, at least 1, as the login reply announces it.
    var idleTimeoutSeconds: Int {
        max(1, Int(limits.idleTimeout.rounded(.down)))
    }

    /// Runs the TLS handshake within the handshake deadline; logs and returns false on failure.
    func handshake() -> Bool {
        logEvent(.info, "connection.opened", [("peer.port", String(peer.port))])
        let timeout = limits.handshakeTimeout
        connection.setTimeouts(receive: timeout, send: timeout)
        services.watchdog.set(connection, deadline: Date() + timeout)
        do {
            try connection.accept()
        } catch {
            let reason =
                services.watchdog.didExpire(connection)
                ? "handshake not completed within \(Int(timeout)) s" : String(describing: error)
            logEvent(.warning, "tls.failed", [("error", reason)])
            return false
        }
        services.watchdog.set(connection, deadline: nil)
        connection.setTimeouts(receive: limits.idleTimeout, send: limits.idleTimeout)
        if let block = services.addressGuard.activeBlock(for: peer.address) {
            logEvent(.warning, "connection.blocked", [("until", block.until)])
            try? channel.sendError(
                .blocked,
                "address \(peer.address) is blocked until \(block.until) after \(block.failures) "
                    + "authentication failures; ask the server operator to lift the block", id: "-")
            return false
        }
        return true
    }

    /// Counts a failed login or enrollment against the peer's address, which may block it.
    /// A clock out of tolerance or a server fault is not the client's attempt to get in, so
    /// those do not count.
    func recordAuthenticationFailure(_ failure: ServiceFailure) {
        switch failure.code {
        case .staleTimestamp, .internalError, .busy, .unsupportedVersion, .sessionInvalid:
            return
        default:
            services.addressGuard.recordFailure(for: peer.address, reason: failure.message)
        }
    }

    /// Whose share of the replay cache this connection's requests count against: the address
    /// (its /64 for IPv6) until a login names the user.
    var requestClient: String {
        "address " + AddressGuard.key(for: peer.address)
    }

    /// Receives the next request within the idle timeout and checks its id and timestamp.
    /// Returns nil when the client closed the connection between requests.
    func receiveRequest() throws -> IncomingFrame? {
        services.watchdog.set(connection, deadline: Date() + limits.idleTimeout)
        defer { services.watchdog.set(connection, deadline: nil) }
        let frame: IncomingFrame
        do {
            frame = try channel.receive()
        } catch ProtocolError.connectionClosed {
            return nil
        } catch let error as ProtocolError {
            throw ServiceFailure(
                error.wireCode, String(describing: error), closesConnection: true)
        }
        do {
            try services.requests.check(id: frame.id, timestamp: frame.timestamp, client: requestClient)
        } catch let rejection as RequestRejection {
            // An id that breaks the id rules is not echoed back.
            let echoed = RequestID.isValid(frame.id) ? frame.id : "-"
            // A client over its share of the replay cache is flooding; closing the connection
            // ends the flood and its log lines.
            throw ServiceFailure(
                rejection.code, rejection.message, closesConnection: rejection.code == .busy, requestID: echoed)
        }
        return frame
    }

    /// Receives the next request, which must be of type `type`.
    func expectRequest<Body: Decodable>(_ type: MessageType, _: Body.Type) throws -> (
        IncomingFrame, Body
    ) {
        guard let frame = try receiveRequest() else {
            // A client that hangs up between frames has tried nothing; health checks and TLS
            // scanners do this, and must not count as authentication failures.
            throw ProtocolError.connectionClosed
        }
        do {
            return (frame, try frame.expect(type, Body.self))
        } catch let error as ProtocolError {
            throw ServiceFailure(.invalidRequest, String(describing: error), closesConnection: true)
        }
    }

    /// Ends a session that failed on something other than a client's request, such as a
    /// state file the server cannot read. A broken state is reported to the client as an
    /// internal error, with the details only in the server log; network failures just close.
    func endAfterUnexpected(_ error: Error, requestID: String, command: String) {
        if let stateError = error as? StateError {
            logEvent(.error, "state.unreadable", [("command", command), ("error", stateError.description)])
            _ = report(
                ServiceFailure(
                    .internalError,
                    "the server cannot read its state files; the operator finds the reason in the server log",
                    closesConnection: true), requestID: requestID, command: command)
            logClosed()
            return
        }
        logClosed(error)
    }

    /// Sends an error frame for a failure, logs it, and returns whether the session may go on.
    ///
    /// - Parameter requestID: The id of the frame that began the exchange, which the error
    ///   frame carries unless the failure names its own.
    func report(_ failure: ServiceFailure, requestID: String, command: String) -> Bool {
        let requestID = failure.requestID ?? requestID
        let level: LogLevel = failure.code == .internalError ? .error : .warning
        logEvent(
            level, "request.failed",
            [
                ("command", command), ("request.id", requestID), ("code", failure.code.rawValue),
                ("error", failure.message),
            ])
        do {
            try channel.sendError(failure.code, failure.message, id: requestID)
        } catch {
            return false
        }
        return !failure.closesConnection
    }

    /// The least a file body must move within each idle timeout, in bytes, so a client that
    /// trickles a byte at a time cannot hold a connection for hours.
    static let minimumBodyProgress = 64 * 1024

    private var bodyProgress = 0

    /// Arms the watchdog for a file body: the connection is cut unless
    /// ``minimumBodyProgress`` bytes pass within each idle timeout.
    func startBody() {
        bodyProgress = 0
        services.watchdog.set(connection, deadline: Date() + limits.idleTimeout)
    }

    /// Counts body bytes and re-arms the watchdog each time enough have passed.
    func bodyAdvanced(by count: Int) {
        bodyProgress += count
        if bodyProgress >= Session.minimumBodyProgress {
            bodyProgress = 0
            services.watchdog.set(connection, deadline: Date() + limits.idleTimeout)
        }
    }

    func finishBody() {
        services.watchdog.set(connection, deadline: nil)
    }

    /// Accepts nonces of 16 to 64 random bytes in base64.
    static func isValidNonce(_ text: String) -> Bool {
        guard let data = Data(base64Encoded: text) else { return false }
        return (16...64).contains(data.count)
    }

    /// True for the socket's own receive or send timeout, which is set to the idle timeout and
    /// may fire just before the watchdog does.
    static func isTimeout(_ error: Error?) -> Bool {
        if let error = error as? TLSError, case .timedOut = error { return true }
        if let error = error as? NetworkError, case .timedOut = error { return true }
        return false
    }

    /// Logs the end of the connection, naming a watchdog cut-off as a timeout.
    func logClosed(_ error: Error? = nil) {
        var fields: [(String, String)] = [
            ("duration.ms", String(Int(Date().timeIntervalSince(openedAt) * 1000)))
        ]
        if services.watchdog.didExpire(connection) || Self.isTimeout(error) {
            fields.append(
                (
                    "error",
                    "cut off: no complete frame, or under 64 KiB of file body, within \(Int(limits.idleTimeout)) s"
                ))
            logEvent(.warning, "connection.timed-out", fields)
            return
        }
        if let error {
            fields.append(("error", String(describing: error)))
        }
        logEvent(error == nil ? .info : .warning, "connection.closed", fields)
    }
}

extension ProtocolError {
    /// The error code a client is sent for this failure of its own input.
    var wireCode: WireErrorCode {
        switch self {
        case .frameTooLarge: return .tooLarge
        case .unsupportedVersion: return .unsupportedVersion
        default: return .invalidRequest
        }
    }
}
