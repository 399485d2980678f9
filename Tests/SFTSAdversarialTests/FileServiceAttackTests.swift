import Foundation
import SFTSCrypto
import SFTSProtocol
import SFTSTestSupport
import Testing

/// Hostile clients against the file service of the real server binary. Each test shows the
/// request is rejected with a clear error, nothing changes on disk, and the server goes on
/// serving others.
@Suite(.serialized)
final class FileServiceAttackTests {
    let fixture: HostileFixture

    init() throws {
        fixture = try HostileFixture()
    }

    func loggedIn(_ client: TestClient) throws -> HostileClient {
        let hostile = try HostileClient.fileService(fixture.server, as: client)
        let reply = try hostile.login(user: client.user, password: client.password)
        try #require(reply.type == .loginAccepted, "login failed: \(reply.typeName)")
        return hostile
    }

    @Test func commandBeforeLoginRejected() throws {
        let hostile = try HostileClient.fileService(fixture.server, as: fixture.alice)
        try hostile.send("put", PutRequest(name: "sneaky.txt", size: 4, force: false))
        let error = try hostile.expectError()
        #expect(error.code == .invalidRequest)
        #expect(error.message.contains("expected a login-start"))
        #expect(hostile.isClosedByServer())
        #expect(try fixture.storedNames().isEmpty)
        #expect(try fixture.serverStillServes())
    }

    /// A keepalive is a request like any other: not before login, not with a stale timestamp
    /// or a repeated id, and it answers only with a pong.
    @Test func pingFollowsTheRequestRules() throws {
        let early = try HostileClient.fileService(fixture.server, as: fixture.alice)
        try early.send("ping", EmptyBody())
        #expect(try early.expectError().code == .invalidRequest)
        #expect(early.isClosedByServer())

        let hostile = try loggedIn(fixture.alice)
        let id = RequestID.make()
        try hostile.send("ping", EmptyBody(), id: id)
        let pong = try hostile.receive()
        #expect(pong.type == .pong)
        #expect(pong.id == id)
        try hostile.send("ping", EmptyBody(), id: id)
        #expect(try hostile.expectError().code == .replayedRequest)
        try hostile.send("ping", EmptyBody(), timestamp: Timestamp.format(Date() - 3600))
        #expect(try hostile.expectError().code == .staleTimestamp)
        #expect(try fixture.storedNames().isEmpty)
        #expect(try fixture.serverStillServes())
    }

    @Test func loginNameMustMatchCertificate() throws {
        let hostile = try HostileClient.fileService(fixture.server, as: fixture.bob)
        let reply = try hostile.login(user: "alice", password: fixture.alice.password)
        #expect(reply.type == .error)
        let error = try reply.body(ErrorBody.self)
        #expect(error.code == .authenticationFailed)
        #expect(error.message.contains("does not match the certificate's CN 'bob'"))
        #expect(try fixture.serverStillServes())
    }

    @Test func wrongPasswordThenCommandsChangeNothing() throws {
        let hostile = try HostileClient.fileService(fixture.server, as: fixture.alice)
        let reply = try hostile.login(user: "alice", password: "not the right password at all")
        #expect(reply.type == .error)
        #expect(try reply.body(ErrorBody.self).code == .authenticationFailed)
        // The server hung up; a command sent anyway goes nowhere.
        try? hostile.send("remove", PathRequest(name: "anything"))
        #expect(hostile.isClosedByServer())
        #expect(fixture.server.log.contains("reason=\"wrong password\""))
        #expect(try fixture.serverStillServes())
    }

    /// Uploads `content` with a record the test controls.
    func upload(
        _ hostile: HostileClient, name: String, content: [UInt8], claimedSHA256: String? = nil,
        signingKey: PrivateKey? = nil, signedName: String? = nil
    ) throws -> ErrorBody? {
        let id = RequestID.make()
        let timestamp = Timestamp.format(Date())
        try hostile.send(
            "put", PutRequest(name: name, size: UInt64(content.count), force: false), id: id,
            timestamp: timestamp)
        let ready = try hostile.receive()
        if ready.type == .error {
            return try ready.body(ErrorBody.self)
        }
        try hostile.sendBytes(content)
        let digest = Digest.sha256(content).hexString
        let record = SignedRecord.upload(
            name: signedName ?? name, size: UInt64(content.count), sha256: claimedSHA256 ?? digest,
            requestID: id, timestamp: timestamp)
        let key =
            try signingKey
            ?? PrivateKey(
                pem: try String(contentsOf: fixture.alice.profileFile("client_key.pem"), encoding: .utf8),
                passphrase: fixture.alice.password)
        let signature = try key.signPSS(record)
        try hostile.send(
            "put-record",
            TransferRecord(
                sha256: claimedSHA256 ?? digest, signature: Data(signature).base64EncodedString(), signer: "alice"))
        let reply = try hostile.receive()
        return reply.type == .error ? try reply.body(ErrorBody.self) : nil
    }

    @Test func uploadSignedByAnotherKeyRejected() throws {
        let hostile = try loggedIn(fixture.alice)
        let stranger = try PrivateKey.generateRSA(bits: 2048)
        let error = try upload(hostile, name: "forged.txt", content: Array("forged".utf8), signingKey: stranger)
        #expect(error?.code == .integrityFailure)
        #expect(error?.message.contains("signature does not verify") == true)
        #expect(try fixture.storedNames().isEmpty)
        #expect(try fixture.serverStillServes())
    }

    @Test func uploadWithWrongHashRejected() throws {
        let hostile = try loggedIn(fixture.alice)
        let error = try upload(
            hostile, name: "tampered.txt", content: Array("tampered".utf8),
            claimedSHA256: String(repeating: "0", count: 64))
        #expect(error?.code == .integrityFailure)
        #expect(error?.message.contains("SHA-256 mismatch") == true)
        #expect(try fixture.storedNames().isEmpty)
    }

    @Test func uploadRecordForAnotherNameRejected() throws {
        let hostile = try loggedIn(fixture.alice)
        let error = try upload(
            hostile, name: "real.txt", content: Array("content".utf8), signedName: "other.txt")
        #expect(error?.code == .integrityFailure)
        #expect(try fixture.storedNames().isEmpty)
    }

    @Test func validUploadThroughRawProtocolIsStored() throws {
        let hostile = try loggedIn(fixture.alice)
        let error = try upload(hostile, name: "honest.txt", content: Array("honest".utf8))
        #expect(error == nil)
        #expect(try fixture.storedNames() == ["honest.txt"])
    }

    @Test func registeredUserCannotUploadEvenWithRawProtocol() throws {
        let hostile = try loggedIn(fixture.bob)
        try hostile.send("put", PutRequest(name: "bob.txt", size: 3, force: false))
        let error = try hostile.expectError()
        #expect(error.code == .permissionDenied)
        #expect(error.message.contains("role 'registered' lacks the 'upload' permission"))
        try hostile.send("remove", PathRequest(name: "anything.txt"))
        #expect(try hostile.expectError().code == .permissionDenied)
        #expect(try fixture.storedNames().isEmpty)
    }

    @Test(arguments: ["../escape.txt", "/etc/passwd", "a\nb", "a\u{0}b", "a\\b", String(repeating: "n", count: 300)])
    func hostileNamesRejected(_ name: String) throws {
        let hostile = try loggedIn(fixture.alice)
        try hostile.send("put", PutRequest(name: name, size: 1, force: false))
        let error = try hostile.expectError()
        #expect(error.code == .invalidRequest)
        #expect(error.message.contains("invalid remote name"))
        try hostile.send("get", PathRequest(name: name))
        #expect(try hostile.expectError().code == .invalidRequest)
        try hostile.send("remove", PathRequest(name: name))
        #expect(try hostile.expectError().code == .invalidRequest)
        try hostile.send("list", ListRequest(path: name, long: false))
        #expect(try hostile.expectError().code == .invalidRequest)
        #expect(try fixture.storedNames().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: fixture.server.file("escape.txt").path))
    }

    @Test func pipeCharacterIsAnOrdinaryName() throws {
        let hostile = try loggedIn(fixture.alice)
        #expect(try upload(hostile, name: "a|b", content: Array("pipe".utf8)) == nil)
        #expect(try fixture.storedNames() == ["a|b"])
        #expect(try String(contentsOf: fixture.server.file("directory/a|b"), encoding: .utf8) == "pipe")
    }

    @Test func staleFutureZonelessAndReplayedRequestsRejected() throws {
        let hostile = try loggedIn(fixture.alice)
        let listing = ListRequest(path: "", long: false)
        try hostile.send("list", listing, timestamp: Timestamp.format(Date() + 3600))
        #expect(try hostile.expectError().code == .staleTimestamp)
        try hostile.send("list", listing, timestamp: Timestamp.format(Date() - 3600))
        #expect(try hostile.expectError().code == .staleTimestamp)
        let zoneless = RequestID.make()
        try hostile.send("list", listing, id: zoneless, timestamp: "2026-12-04T16:20:19")
        let zonelessError = try hostile.expectError()
        #expect(zonelessError.code == .invalidRequest)
        #expect(zonelessError.message.contains("time zone"))
        try hostile.send("list", listing, timestamp: "not a time")
        #expect(try hostile.expectError().code == .invalidRequest)

        let id = RequestID.make()
        try hostile.send("list", listing, id: id)
        #expect(try hostile.receive().type == .listResult)
        try hostile.send("list", listing, id: id)
        let replay = try hostile.expectError()
        #expect(replay.code == .replayedRequest)
        #expect(replay.message.contains(id))
    }

    @Test func oversizedFrameRejectedWithoutAllocating() throws {
        let hostile = try loggedIn(fixture.alice)
        try hostile.sendBytes(hostile.lengthPrefix(0xFFFF_FFFF))
        let error = try hostile.expectError()
        #expect(error.code == .tooLarge)
        #expect(error.message.contains("4294967295"))
        #expect(hostile.isClosedByServer())
        #expect(try fixture.serverStillServes())
    }

    @Test func interruptedUploadLeavesNothing() throws {
        do {
            let hostile = try loggedIn(fixture.alice)
            try hostile.send("put", PutRequest(name: "cut.bin", size: 1_000_000, force: false))
            #expect(try hostile.receive().type == .putReady)
            try hostile.sendBytes([UInt8](repeating: 7, count: 100_000))
            hostile.connection.abort()
        }
        // The server notices the cut when its next read fails; wait for its log line.
        let deadline = Date() + 10
        while !fixture.server.log.contains("truncated") && !fixture.server.log.contains("connection lost")
            && Date() < deadline
        {
            usleep(20_000)
        }
        #expect(try fixture.storedNames().isEmpty)
        #expect(try fixture.serverStillServes())
    }

    @Test func unknownVersionAndTypeRejected() throws {
        let hostile = try loggedIn(fixture.alice)
        try hostile.send("list", ListRequest(path: "", long: false), version: 9)
        let error = try hostile.expectError()
        #expect(error.code == .unsupportedVersion)
        #expect(hostile.isClosedByServer())

        let second = try loggedIn(fixture.alice)
        try second.send("format-disk", EmptyBody())
        #expect(try second.expectError().code == .invalidRequest)
    }
}

/// Sessions and enrollments that outlive what they were granted.
@Suite(.serialized)
final class SessionLifetimeTests {
    @Test func openSessionEndsWhenUserIsReenrolled() throws {
        let fixture = try HostileFixture()
        let session = try HostileClient.fileService(fixture.server, as: fixture.bob)
        #expect(try session.login(user: "bob", password: fixture.bob.password).type == .loginAccepted)

        #expect(try fixture.server.admin(["user", "remove", "bob"]).status == 0)
        let newBob = try TestClient(user: "bob", password: TestSecrets.bobPassword)
        #expect(try newBob.enroll(fixture.server).status == 0)
        #expect(try fixture.server.admin(["user", "role", "bob", "user"]).status == 0)

        // The old connection carries the old certificate, which no longer belongs to bob.
        try session.send("put", PutRequest(name: "late.txt", size: 1, force: false))
        let error = try session.expectError()
        #expect(error.code == .authenticationFailed)
        #expect(error.message.contains("removed, enrolled again or revoked"))
        #expect(session.isClosedByServer())
        #expect(try fixture.storedNames().isEmpty)
        #expect(try newBob.run(["ls"]).status == 0)
    }

    /// A session kept open by pings ends at the first ping after the user is removed.
    @Test func pingEndsSessionOfRemovedUser() throws {
        let fixture = try HostileFixture()
        let session = try HostileClient.fileService(fixture.server, as: fixture.bob)
        #expect(try session.login(user: "bob", password: fixture.bob.password).type == .loginAccepted)
        try session.send("ping", EmptyBody())
        #expect(try session.receive().type == .pong)

        #expect(try fixture.server.admin(["user", "remove", "bob"]).status == 0)
        try session.send("ping", EmptyBody())
        let error = try session.expectError()
        #expect(error.code == .authenticationFailed)
        #expect(error.message.contains("removed, enrolled again or revoked"))
        #expect(session.isClosedByServer())
        #expect(try fixture.serverStillServes())
    }
}
