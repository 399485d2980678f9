import Foundation
import SFTSCrypto
import SFTSProtocol
import SFTSTLS
import SFTSTestSupport

/// A client that speaks the wire protocol directly, so a test can send what a hostile client
/// would: frames out of order, forged records, stale timestamps, wrong names.
final class HostileClient {
    let connection: TLSConnection
    let channel: FrameChannel

    private init(port: UInt16, context: TLSContext, sourceAddress: String?) throws {
        // A write after the server hung up must fail, not end the test process.
        signal(SIGPIPE, SIG_IGN)
        let descriptor = try TCPClient.connect(
            host: "127.0.0.1", port: port, timeout: 10, sourceAddress: sourceAddress)
        connection = try TLSConnection(context: context, descriptor: descriptor, expectedHost: "127.0.0.1")
        connection.setTimeouts(receive: 20, send: 20)
        try connection.connect()
        let connection = self.connection
        channel = FrameChannel(
            maxFrameBytes: 1 << 20, read: { try connection.read(into: $0) }, write: { try connection.write($0) })
    }

    deinit {
        connection.close()
    }

    /// Connects to the file service with a client's certificate and key, from `sourceAddress`
    /// when given (another loopback address, so one test can play several clients).
    static func fileService(_ server: TestServer, as client: TestClient, from sourceAddress: String? = nil) throws
        -> HostileClient
    {
        let ca = try Certificate(contentsOf: client.profileFile("ca_certificate.pem"))
        let certificate = try Certificate(contentsOf: client.profileFile("client_certificate.pem"))
        let key = try PrivateKey(
            pem: try String(contentsOf: client.profileFile("client_key.pem"), encoding: .utf8),
            passphrase: client.password)
        return try HostileClient(
            port: server.filePort, context: try TLSContext.client(trusting: ca, certificate: certificate, key: key),
            sourceAddress: sourceAddress)
    }

    /// Connects to the enrollment service without verifying the server, as enrollment does.
    static func enrollment(_ server: TestServer, from sourceAddress: String? = nil) throws -> HostileClient {
        try HostileClient(
            port: server.enrollmentPort, context: try TLSContext.client(trusting: nil), sourceAddress: sourceAddress)
    }

    /// Sends a frame with any type, id, timestamp text and protocol version.
    func send<Body: Encodable>(
        _ type: String, _ body: Body, id: String = RequestID.make(), timestamp: String? = nil, version: Int = 1
    ) throws {
        let envelope = RawEnvelope(
            v: version, type: type, id: id, ts: timestamp ?? Timestamp.format(Date()), body: body)
        try sendFrame(String(decoding: try JSONEncoder().encode(envelope), as: UTF8.self))
    }

    private struct RawEnvelope<Body: Encodable>: Encodable {
        let v: Int
        let type: String
        let id: String
        let ts: String
        let body: Body
    }

    /// Sends `json` as one frame.
    func sendFrame(_ json: String) throws {
        let bytes = Array(json.utf8)
        try sendBytes(lengthPrefix(UInt32(bytes.count)) + bytes)
    }

    func sendBytes(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try connection.write($0) }
    }

    func lengthPrefix(_ length: UInt32) -> [UInt8] {
        [UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
    }

    func receive() throws -> IncomingFrame {
        try channel.receive()
    }

    /// Receives the next frame and returns its error body; fails when it is not an error.
    func expectError() throws -> ErrorBody {
        let frame = try receive()
        guard frame.type == .error else {
            throw HarnessError("expected an error frame, received \(frame.typeName)")
        }
        return try frame.body(ErrorBody.self)
    }

    /// Returns true when the server has closed the connection.
    func isClosedByServer() -> Bool {
        do {
            _ = try channel.receive()
            return false
        } catch {
            return true
        }
    }

    /// Logs in as `user` with `password`, the way the real client does.
    func login(user: String, password: String) throws -> IncomingFrame {
        let nonce = Data(SecureRandom.bytes(32)).base64EncodedString()
        try send("login-start", LoginStart(user: user, nonce: nonce))
        let challengeFrame = try receive()
        if challengeFrame.type == .error {
            return challengeFrame
        }
        let challenge = try challengeFrame.body(LoginChallenge.self)
        let salt = Array(Data(base64Encoded: challenge.salt)!)
        let keys = try SCRAM.keys(
            password: PasswordPolicy.normalize(password), salt: salt, iterations: challenge.iterations)
        let authMessage = SignedRecord.login(
            user: user, clientNonce: nonce, serverNonce: challenge.nonce, salt: salt,
            iterations: challenge.iterations, channelBinding: try connection.channelBinding())
        let proof = SCRAM.clientProof(clientKey: keys.clientKey, authMessage: authMessage)
        try send("login-proof", LoginProof(proof: Data(proof).base64EncodedString()))
        return try receive()
    }
}

/// A server with alice (role `user`) and bob (role `registered`) enrolled.
final class HostileFixture {
    let server: TestServer
    let alice: TestClient
    let bob: TestClient

    init(serverArguments: [String] = [], listenAddress: String = "127.0.0.1") throws {
        server = try TestServer(extraArguments: serverArguments, listenAddress: listenAddress)
        alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        bob = try TestClient(user: "bob", password: TestSecrets.bobPassword)
        for client in [alice, bob] {
            let result = try client.enroll(server)
            guard result.status == 0 else { throw HarnessError("enroll failed: \(result)") }
        }
        let promoted = try server.admin(["user", "role", "alice", "user"])
        guard promoted.status == 0 else { throw HarnessError("role change failed: \(promoted)") }
    }

    /// The names in the served directory, temporary files included.
    func storedNames() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: server.file("directory").path).sorted()
    }

    /// A normal command from alice succeeds, so the server is still serving.
    func serverStillServes() throws -> Bool {
        try alice.run(["ls"]).status == 0
    }
}
