import Foundation
import SFTSCrypto
import SFTSProtocol
import SFTSTLS
import SFTSTestSupport
import Testing

/// Hostile enrollments against the real server: each is rejected and leaves users.json and
/// the issued certificates as they were.
@Suite(.serialized)
final class EnrollmentAttackTests {
    let server: TestServer

    init() throws {
        server = try TestServer()
    }

    /// Runs the host code exchange for `user` and returns the client once the server has
    /// proved itself, ready for the enroll-request.
    func provenClient(user: String) throws -> HostileClient {
        let hostile = try HostileClient.enrollment(server)
        let nonce = Data(SecureRandom.bytes(32)).base64EncodedString()
        try hostile.send("enroll-start", EnrollStart(user: user, nonce: nonce))
        let challenge = try hostile.receive().expect(.enrollChallenge, EnrollChallenge.self)
        let key = Array(HostCode.normalize(server.hostCode)!.utf8)
        let proof = Digest.hmacSHA256(
            key: key,
            data: SignedRecord.enrollment(
                role: "client", user: user, clientNonce: nonce, serverNonce: challenge.nonce,
                channelBinding: try hostile.connection.channelBinding(), caFingerprint: []))
        try hostile.send("enroll-proof", EnrollProof(proof: Data(proof).base64EncodedString()))
        _ = try hostile.receive().expect(.enrollAccepted, EnrollAccepted.self)
        return hostile
    }

    func stateSnapshot() throws -> (users: Data?, issued: [String]) {
        (
            FileManager.default.contents(atPath: server.file("users.json").path),
            try FileManager.default.contentsOfDirectory(atPath: server.file("certificates/issued").path).sorted()
        )
    }

    @Test func csrForAnotherNameRejected() throws {
        let before = try stateSnapshot()
        let hostile = try provenClient(user: "alice")
        let key = try PrivateKey.generateRSA(bits: 2048)
        let csr = try CertificateSigningRequest.create(commonName: "admin", key: key)
        try hostile.send("enroll-request", EnrollRequest(csr: csr.pem, password: TestSecrets.alicePassword))
        let error = try hostile.expectError()
        #expect(error.code == .policyRejected)
        #expect(error.message.contains("common name"))
        let after = try stateSnapshot()
        #expect(after.users == before.users)
        #expect(after.issued == before.issued)
    }

    @Test func garbageCSRRejected() throws {
        let hostile = try provenClient(user: "alice")
        try hostile.send("enroll-request", EnrollRequest(csr: "not a CSR", password: TestSecrets.alicePassword))
        let error = try hostile.expectError()
        #expect(error.code == .invalidRequest)
        #expect(error.message.contains("invalid CSR"))
    }

    @Test func weakPasswordRejectedByServer() throws {
        let before = try stateSnapshot()
        let hostile = try provenClient(user: "alice")
        let key = try PrivateKey.generateRSA(bits: 2048)
        let csr = try CertificateSigningRequest.create(commonName: "alice", key: key)
        try hostile.send("enroll-request", EnrollRequest(csr: csr.pem, password: "short"))
        let error = try hostile.expectError()
        #expect(error.code == .policyRejected)
        #expect(error.message.contains("at least 15"))
        #expect(try stateSnapshot().issued == before.issued)
    }

    @Test func invalidUserNameRejectedByServer() throws {
        let hostile = try HostileClient.enrollment(server)
        try hostile.send(
            "enroll-start", EnrollStart(user: "../root", nonce: Data(SecureRandom.bytes(32)).base64EncodedString()))
        let error = try hostile.expectError()
        #expect(error.code == .policyRejected)
        #expect(error.message.contains("invalid user name"))
    }

    @Test func proofFromAnotherConnectionRejected() throws {
        // A proof computed for a different channel binding, as a relay would forward it.
        let hostile = try HostileClient.enrollment(server)
        let nonce = Data(SecureRandom.bytes(32)).base64EncodedString()
        try hostile.send("enroll-start", EnrollStart(user: "alice", nonce: nonce))
        let challenge = try hostile.receive().expect(.enrollChallenge, EnrollChallenge.self)
        let proof = Digest.hmacSHA256(
            key: Array(HostCode.normalize(server.hostCode)!.utf8),
            data: SignedRecord.enrollment(
                role: "client", user: "alice", clientNonce: nonce, serverNonce: challenge.nonce,
                channelBinding: [UInt8](repeating: 0, count: 32), caFingerprint: []))
        try hostile.send("enroll-proof", EnrollProof(proof: Data(proof).base64EncodedString()))
        let error = try hostile.expectError()
        #expect(error.code == .authenticationFailed)
        #expect(try stateSnapshot().users.map { String(decoding: $0, as: UTF8.self).contains("alice") } == false)
    }

    @Test func requestBeforeProofRejected() throws {
        let before = try stateSnapshot()
        let hostile = try HostileClient.enrollment(server)
        let key = try PrivateKey.generateRSA(bits: 2048)
        let csr = try CertificateSigningRequest.create(commonName: "alice", key: key)
        try hostile.send("enroll-request", EnrollRequest(csr: csr.pem, password: TestSecrets.alicePassword))
        let error = try hostile.expectError()
        #expect(error.code == .invalidRequest)
        #expect(try stateSnapshot().issued == before.issued)
    }
}

/// Tokens and expired certificates against the real server, bypassing the client's own checks.
@Suite(.serialized)
final class TokenAttackTests {
    @Test func tokenForAnotherUserRejectedByServer() throws {
        let server = try TestServer()
        let issued = try server.admin(["ca", "token", "bob"])
        let token = try #require(EnrollmentToken.parse(issued.standardOutput))
        let hostile = try HostileClient.enrollment(server)
        try hostile.send(
            "enroll-start",
            EnrollStart(user: "carol", nonce: Data(SecureRandom.bytes(32)).base64EncodedString(), token: token.id))
        let error = try hostile.expectError()
        #expect(error.code == .authenticationFailed)
        #expect(error.message.contains("token"))
        let tokens = try String(contentsOf: server.file("tokens.json"), encoding: .utf8)
        #expect(!tokens.contains("usedAt"))
    }

    @Test func expiredCertificateRejectedAtHandshake() throws {
        let fixture = try HostileFixture(serverArguments: ["--cert-lifetime", "5s"])
        let certificate = try Certificate(contentsOf: fixture.bob.profileFile("client_certificate.pem"))
        #expect(waitUntil(20) { certificate.notAfter < Date() })
        #expect {
            let hostile = try HostileClient.fileService(fixture.server, as: fixture.bob)
            _ = try hostile.login(user: "bob", password: fixture.bob.password)
        } throws: { error in
            if case TLSError.certificateRejectedByPeer(let reason) = error { return reason.contains("expired") }
            return false
        }
    }
}

/// Revocation, renewal and re-enrollment against clients that keep sessions open, guess
/// passwords from many addresses, or drop a renewed certificate.
@Suite(.serialized)
final class LifecycleAttackTests {
    func revoke(_ server: TestServer, _ target: String) throws -> ProcessResult {
        try ProcessRunner.run(
            SFTSBinary.url, ["ca", "revoke", target, "--root", server.root.path],
            environment: ["SFTS_PKI_PASSPHRASE": TestSecrets.pkiPassphrase])
    }

    func renewRequest(for client: TestClient, key: PrivateKey) throws -> RenewRequest {
        RenewRequest(csr: try CertificateSigningRequest.create(commonName: client.user, key: key).pem)
    }

    @Test func openSessionCannotRenewAfterRevocation() throws {
        let fixture = try HostileFixture()
        let session = try HostileClient.fileService(fixture.server, as: fixture.bob)
        #expect(try session.login(user: "bob", password: fixture.bob.password).type == .loginAccepted)
        #expect(try revoke(fixture.server, "bob").status == 0)

        try session.send("renew", try renewRequest(for: fixture.bob, key: try PrivateKey.generateRSA(bits: 2048)))
        let error = try session.expectError()
        #expect(error.code == .authenticationFailed)
        #expect(error.message.contains("revoked"))
        let users = try String(contentsOf: fixture.server.file("users.json"), encoding: .utf8)
        #expect(!users.contains("previousCertificateFingerprint"))
    }

    @Test func renewalWithTheSameKeyRejected() throws {
        let fixture = try HostileFixture()
        let session = try HostileClient.fileService(fixture.server, as: fixture.bob)
        #expect(try session.login(user: "bob", password: fixture.bob.password).type == .loginAccepted)
        let currentKey = try PrivateKey(
            pem: try String(contentsOf: fixture.bob.profileFile("client_key.pem"), encoding: .utf8),
            passphrase: fixture.bob.password)
        try session.send("renew", try renewRequest(for: fixture.bob, key: currentKey))
        let error = try session.expectError()
        #expect(error.code == .policyRejected)
        #expect(error.message.contains("new key"))
    }

    @Test func lostRenewalKeepsThePreviousCertificateUsable() throws {
        let fixture = try HostileFixture()
        let session = try HostileClient.fileService(fixture.server, as: fixture.bob)
        #expect(try session.login(user: "bob", password: fixture.bob.password).type == .loginAccepted)
        try session.send("renew", try renewRequest(for: fixture.bob, key: try PrivateKey.generateRSA(bits: 2048)))
        #expect(try session.receive().type == .renewed)
        // The renewed certificate never reaches the profile; the old one must still log in.
        let listing = try fixture.bob.run(["ls"])
        #expect(listing.status == 0, "\(listing)")
        #expect(try fixture.bob.run(["ls"]).status == 0)
    }

    /// Runs a host-code re-enrollment of `user` with `password` from `address`.
    func reenroll(_ server: TestServer, user: String, password: String, from address: String) throws -> ErrorBody? {
        let hostile = try HostileClient.enrollment(server, from: address)
        let nonce = Data(SecureRandom.bytes(32)).base64EncodedString()
        try hostile.send("enroll-start", EnrollStart(user: user, nonce: nonce))
        let challenge = try hostile.receive().expect(.enrollChallenge, EnrollChallenge.self)
        let proof = Digest.hmacSHA256(
            key: Array(HostCode.normalize(server.hostCode)!.utf8),
            data: SignedRecord.enrollment(
                role: "client", user: user, clientNonce: nonce, serverNonce: challenge.nonce,
                channelBinding: try hostile.connection.channelBinding(), caFingerprint: []))
        try hostile.send("enroll-proof", EnrollProof(proof: Data(proof).base64EncodedString()))
        let accepted = try hostile.receive()
        if accepted.type == .error { return try accepted.body(ErrorBody.self) }
        let csr = try CertificateSigningRequest.create(commonName: user, key: try PrivateKey.generateRSA(bits: 2048))
        try hostile.send("enroll-request", EnrollRequest(csr: csr.pem, password: password))
        let reply = try hostile.receive()
        return reply.type == .error ? try reply.body(ErrorBody.self) : nil
    }

    @Test func passwordGuessingByHostCodeIsBoundedPerAccount() throws {
        let fixture = try HostileFixture()
        for index in 0..<3 {
            let error = try reenroll(
                fixture.server, user: "alice", password: "guess number \(index) is wrong", from: "127.0.0.\(40 + index)"
            )
            #expect(error?.code == .authenticationFailed)
        }
        // A fourth address, and even the right password, now meet the account's block.
        let blocked = try reenroll(fixture.server, user: "alice", password: fixture.alice.password, from: "127.0.0.50")
        #expect(blocked?.code == .blocked)
        #expect(blocked?.message.contains("token") == true)
        #expect(try fixture.server.admin(["block", "list"]).standardOutput.contains("user:alice"))
        #expect(try fixture.alice.run(["ls"]).status == 0)
    }

    @Test func revokedUserNeedsToken() throws {
        let fixture = try HostileFixture()
        #expect(try revoke(fixture.server, "alice").status == 0)
        let error = try reenroll(fixture.server, user: "alice", password: fixture.alice.password, from: "127.0.0.60")
        #expect(error?.code == .authenticationFailed)
        #expect(error?.message.contains("was revoked") == true)
    }

    @Test func restoredOlderRevocationListIsRepaired() throws {
        let fixture = try HostileFixture()
        let crl = fixture.server.file("certificates/crl.pem")
        let older = try Data(contentsOf: crl)
        #expect(try revoke(fixture.server, "alice").status == 0)
        #expect(try fixture.alice.run(["ls"]).status == 3)

        try older.write(to: crl)
        #expect(try fixture.alice.run(["ls"]).status == 3)
        #expect(fixture.server.log.contains("crl.rewritten"))
        #expect(try fixture.bob.run(["ls"]).status == 0)
    }
}

/// Session tickets presented by a hostile client.
@Suite(.serialized)
final class SessionTicketAttackTests {
    func ticket(_ fixture: HostileFixture) throws -> String {
        let session = try HostileClient.fileService(fixture.server, as: fixture.bob)
        #expect(try session.login(user: "bob", password: fixture.bob.password).type == .loginAccepted)
        try session.send("open-session", OpenSessionRequest(ttl: 600))
        return try session.receive().expect(.sessionOpened, SessionOpened.self).ticket
    }

    func loginWithTicket(_ fixture: HostileFixture, as client: TestClient, user: String, ticket: String) throws
        -> IncomingFrame
    {
        let hostile = try HostileClient.fileService(fixture.server, as: client)
        try hostile.send(
            "login-start",
            LoginStart(user: user, nonce: Data(SecureRandom.bytes(32)).base64EncodedString(), session: ticket))
        return try hostile.receive()
    }

    @Test func ticketWorksOnlyWithItsCertificate() throws {
        let fixture = try HostileFixture()
        let bobTicket = try ticket(fixture)
        #expect(try loginWithTicket(fixture, as: fixture.bob, user: "bob", ticket: bobTicket).type == .loginAccepted)

        // alice presents bob's ticket with her own certificate, under her name and under his.
        let asAlice = try loginWithTicket(fixture, as: fixture.alice, user: "alice", ticket: bobTicket)
        #expect(try asAlice.body(ErrorBody.self).code == .sessionInvalid)
        let asBob = try loginWithTicket(fixture, as: fixture.alice, user: "bob", ticket: bobTicket)
        #expect(try asBob.body(ErrorBody.self).code == .authenticationFailed)

        // A forged MAC or payload fails.
        var forged = Array(bobTicket)
        forged[forged.count - 3] = forged[forged.count - 3] == "A" ? "B" : "A"
        let tampered = try loginWithTicket(fixture, as: fixture.bob, user: "bob", ticket: String(forged))
        #expect(try tampered.body(ErrorBody.self).code == .sessionInvalid)
    }

    @Test func ticketSessionCannotOpenAnother() throws {
        let fixture = try HostileFixture()
        let bobTicket = try ticket(fixture)
        let hostile = try HostileClient.fileService(fixture.server, as: fixture.bob)
        try hostile.send(
            "login-start",
            LoginStart(user: "bob", nonce: Data(SecureRandom.bytes(32)).base64EncodedString(), session: bobTicket))
        #expect(try hostile.receive().type == .loginAccepted)
        try hostile.send("open-session", OpenSessionRequest(ttl: 600))
        #expect(try hostile.expectError().code == .permissionDenied)
    }
}

extension SessionTicketAttackTests {
    @Test func ticketSessionCannotChangePasswordOrRenew() throws {
        let fixture = try HostileFixture()
        let bobTicket = try ticket(fixture)
        let hostile = try HostileClient.fileService(fixture.server, as: fixture.bob)
        try hostile.send(
            "login-start",
            LoginStart(user: "bob", nonce: Data(SecureRandom.bytes(32)).base64EncodedString(), session: bobTicket))
        #expect(try hostile.receive().type == .loginAccepted)
        let before = try Data(contentsOf: fixture.server.file("users.json"))

        try hostile.send("change-password", ChangePasswordRequest(password: "attacker chosen passphrase"))
        #expect(try hostile.expectError().code == .permissionDenied)
        let key = try PrivateKey.generateRSA(bits: 2048)
        try hostile.send(
            "renew", RenewRequest(csr: try CertificateSigningRequest.create(commonName: "bob", key: key).pem))
        #expect(try hostile.expectError().code == .permissionDenied)
        #expect(try Data(contentsOf: fixture.server.file("users.json")) == before)
    }
}
