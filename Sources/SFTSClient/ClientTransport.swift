import Foundation
import SFTSCrypto
import SFTSProtocol
import SFTSTLS

/// Client-side timeouts.
public struct ClientTimeouts: Sendable {
    /// Seconds to wait for the TCP connection.
    public var connect: TimeInterval = 15
    /// Seconds any single read or write may block, the handshake included.
    public var io: TimeInterval = 60

    public init() {}
}

/// A TLS connection to a server and the frame channel over it.
final class ClientTransport {
    let connection: TLSConnection
    let channel: FrameChannel

    /// The largest frame the client accepts from a server.
    static let maxFrameBytes = 1024 * 1024

    /// Connects, completes the TLS handshake and returns the transport.
    init(
        host: String, port: UInt16, context: TLSContext, timeouts: ClientTimeouts, clock: PhaseClock? = nil
    ) throws {
        let descriptor = try TCPClient.connect(host: host, port: port, timeout: timeouts.connect)
        clock?.mark("connect")
        let connection = try TLSConnection(
            context: context, descriptor: descriptor, expectedHost: host)
        connection.setTimeouts(receive: timeouts.io, send: timeouts.io)
        try connection.connect()
        clock?.mark("tls")
        self.connection = connection
        channel = FrameChannel(
            maxFrameBytes: ClientTransport.maxFrameBytes,
            read: { try connection.read(into: $0) }, write: { try connection.write($0) })
    }

    /// The id of the frame that began the current exchange, which every reply must carry.
    private var exchangeID: String?

    /// Sends a request with a fresh id and the current time; returns the id and timestamp the
    /// frame carried, which signed records cover.
    ///
    /// - Parameter continuesExchange: True for a later frame of an exchange, such as
    ///   `login-proof` or `put-record`, whose replies keep the id of the exchange's first frame.
    @discardableResult
    func send<Body: Encodable>(_ type: MessageType, _ body: Body, continuesExchange: Bool = false) throws -> (
        id: String, timestamp: String
    ) {
        let id = RequestID.make()
        let now = Date()
        try channel.send(type, id: id, body: body, date: now)
        if !continuesExchange {
            exchangeID = id
        }
        return (id, Timestamp.format(now))
    }

    /// Receives a reply of type `type`; an `error` frame is thrown as a ``ClientError``.
    func receive<Body: Decodable>(_ type: MessageType, _: Body.Type) throws -> Body {
        try receiveFrame(type, Body.self).body
    }

    /// Receives a reply of type `type` together with its envelope.
    func receiveFrame<Body: Decodable>(_ type: MessageType, _: Body.Type) throws -> (
        frame: IncomingFrame, body: Body
    ) {
        do {
            let frame = try channel.receive()
            let body = try frame.expect(type, Body.self)
            guard frame.id == exchangeID else {
                throw ClientError(
                    .network,
                    "the server answered request \(exchangeID ?? "-") with a "
                        + "\(DisplayText.escaped(frame.typeName)) frame for request "
                        + "\(DisplayText.escaped(frame.id))")
            }
            return (frame, body)
        } catch let error as ProtocolError {
            throw ClientError.wrap(error)
        }
    }

    func close() {
        connection.close()
    }
}

/// Measures consecutive phases of a command: each mark ends a phase that began at the
/// previous mark.
final class PhaseClock {
    private var last = Date()
    private(set) var phases: [(name: String, seconds: TimeInterval)] = []

    func mark(_ name: String) {
        let now = Date()
        phases.append((name, now.timeIntervalSince(last)))
        last = now
    }
}
