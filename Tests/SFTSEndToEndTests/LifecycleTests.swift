import Foundation
import SFTSTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Certificate lifecycle through the real binary: one-time tokens, CA policy on signing,
/// revocation, renewal, a PKI made with openssl, and server certificate rotation.
@Suite(.serialized)
final class LifecycleTests {
    let openssl: URL

    init() throws {
        openssl = try #require(ProcessRunner.which("openssl"))
    }

    func runOpenSSL(_ arguments: [String], environment: [String: String] = [:]) throws -> ProcessResult {
        try ProcessRunner.run(openssl, arguments, environment: environment, timeout: 60)
    }

    func enroll(_ client: TestClient, _ server: TestServer, token: String, user: String? = nil) throws -> ProcessResult
    {
        var arguments = [
            "enroll", "--server", "127.0.0.1", "--port", String(server.filePort), "--csr-port",
            String(server.enrollmentPort), "--key-bits", "2048", "--force",
        ]
        if let user {
            arguments += ["--user", user]
        }
        return try client.run(arguments, extraEnvironment: ["SFTS_ENROLL_TOKEN": token])
    }

    func token(_ server: TestServer, _ user: String, ttl: String = "24h") throws -> String {
        let result = try server.admin(["ca", "token", user, "--ttl", ttl])
        try #require(result.status == 0, "\(result)")
        let lines = result.standardOutput.split(separator: "\n")
        try #require(lines.count == 1, "ca token printed more than the token: \(result)")
        return String(lines[0])
    }

    @Test func tokenWorksOnceForItsUserUntilItExpires() throws {
        let server = try TestServer()
        let bob = try TestClient(user: "bob", password: TestSecrets.bobPassword)
        let bobToken = try token(server, "bob")
        #expect(bobToken.hasPrefix("sfts-token-"))

        let first = try enroll(bob, server, token: bobToken)
        #expect(first.status == 0, "\(first)")
        #expect(try bob.run(["ls"]).status == 0)
        #expect(server.log.contains("method=token"))

        let second = try enroll(try TestClient(user: "bob", password: TestSecrets.bobPassword), server, token: bobToken)
        #expect(second.status == 3, "\(second)")
        #expect(second.standardError.contains("already used"))

        let carol = try TestClient(user: "carol", password: TestSecrets.alicePassword)
        let carolToken = try token(server, "carol", ttl: "1s")
        let wrongUser = try enroll(carol, server, token: carolToken, user: "dave")
        #expect(wrongUser.status == 2, "\(wrongUser)")
        #expect(wrongUser.standardError.contains("token is for user 'carol'"))
        // Wait until the token's expiry, as tokens.json records it, has passed.
        let tokens = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: server.file("tokens.json")))
                as? [String: [String: Any]])
        let expires = try #require(tokens.values.first { $0["user"] as? String == "carol" }?["expires"] as? Double)
        #expect(waitUntil(10) { Date().timeIntervalSince1970 > expires })
        let expired = try enroll(carol, server, token: carolToken)
        #expect(expired.status == 3, "\(expired)")
        #expect(expired.standardError.contains("expired"))
        let users = try String(contentsOf: server.file("users.json"), encoding: .utf8)
        #expect(!users.contains("carol"))
    }

    /// An operator who handed out a token by mistake withdraws it by id or by name. The
    /// running server rejects it, and a new token still works.
    @Test func cancelledTokenNoLongerEnrolls() throws {
        let server = try TestServer()
        let bob = try TestClient(user: "bob", password: TestSecrets.bobPassword)
        let first = try token(server, "bob")
        let second = try token(server, "bob")
        let listed = try server.admin(["ca", "tokens"])
        #expect(listed.status == 0, "\(listed)")
        let ids = listed.standardOutput.split(separator: "\n").dropFirst().compactMap { $0.split(separator: " ").first }
        #expect(ids.count == 2, "\(listed)")
        #expect(listed.standardOutput.components(separatedBy: " unused").count == 3, "\(listed)")

        let byID = try server.admin(["ca", "token-cancel", String(ids[0])])
        #expect(byID.status == 0, "\(byID)")
        let byName = try server.admin(["ca", "token-cancel", "bob"])
        #expect(byName.status == 0, "\(byName)")
        #expect(byName.standardOutput.contains("cancelled token \(ids[1])"), "\(byName)")
        let nothingLeft = try server.admin(["ca", "token-cancel", "bob"])
        #expect(nothingLeft.status == 5, "\(nothingLeft)")

        for cancelled in [first, second] {
            let refused = try enroll(bob, server, token: cancelled)
            #expect(refused.status == 3, "\(refused)")
            #expect(refused.standardError.contains("cancelled"), "\(refused)")
        }
        let serverLog = try String(contentsOf: server.file("logs/server.log"), encoding: .utf8)
        #expect(serverLog.contains("token.cancelled"))
        let fresh = try enroll(bob, server, token: try token(server, "bob"))
        #expect(fresh.status == 0, "\(fresh)")
        let after = try server.admin(["ca", "tokens"]).standardOutput
        #expect(after.components(separatedBy: " cancelled ").count == 3, "\(after)")
        #expect(after.contains(" used "), "\(after)")
    }

    @Test func pinnedFingerprintMismatchSendsNothing() throws {
        let server = try TestServer()
        let bob = try TestClient(user: "bob", password: TestSecrets.bobPassword)
        // A token that names another CA, as one from a different server would.
        let genuine = try token(server, "bob")
        let payload = String(genuine.dropFirst("sfts-token-".count))
        var base64 = payload.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        let decoded = try #require(Data(base64Encoded: base64))
        var json = try #require(try JSONSerialization.jsonObject(with: decoded) as? [String: Any])
        json["ca"] = String(repeating: "ab", count: 32)
        let forged =
            "sfts-token-"
            + (try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")

        let result = try enroll(bob, server, token: forged)
        #expect(result.status == 3, "\(result)")
        #expect(result.standardError.contains("does not match the token"))
        // The client hung up before its proof: no failure counted, the token is still unused.
        #expect(!server.log.contains("enroll.auth-failed"))
        #expect(!FileManager.default.fileExists(atPath: server.file("auth_failures.json").path))
        let retry = try enroll(bob, server, token: genuine)
        #expect(retry.status == 0, "\(retry)")
    }

    @Test func reenrollmentNeedsTokenOrCurrentPassword() throws {
        let server = try TestServer()
        let alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        #expect(try alice.enroll(server).status == 0)
        #expect(try server.admin(["user", "role", "alice", "user"]).status == 0)
        #expect(server.log.contains("method=host-code"))

        // The same password with the host code re-enrolls on a second machine and keeps the role.
        let laptop = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        let again = try laptop.enroll(server)
        #expect(again.status == 0, "\(again)")
        #expect(again.standardOutput.contains("Role: user"))
        #expect(try laptop.run(["ls"]).status == 0)
        #expect(try alice.run(["ls"]).status == 3)

        // A token lets alice set a new password.
        let phone = try TestClient(user: "alice", password: "a brand new phrase for the phone")
        let viaToken = try enroll(phone, server, token: try token(server, "alice"))
        #expect(viaToken.status == 0, "\(viaToken)")
        #expect(try phone.run(["ls"]).status == 0)
        #expect(try laptop.run(["ls"]).status == 3)
    }

    @Test func caSignAppliesPolicyToOpenSSLRequests() throws {
        let server = try TestServer()
        let work = try TemporaryFolder(prefix: "sfts-csr")
        let config = work.path("req.cnf")
        try Data(
            """
            [req]
            distinguished_name = dn
            req_extensions = wanted
            prompt = no
            [dn]
            CN = mallory
            [wanted]
            basicConstraints = critical,CA:TRUE
            keyUsage = critical,keyCertSign,cRLSign,digitalSignature
            extendedKeyUsage = serverAuth,clientAuth
            subjectAltName = DNS:evil.example,IP:10.0.0.1
            nameConstraints = permitted;DNS:example.com

            """.utf8
        ).write(to: config)
        let made = try runOpenSSL([
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", work.path("key.pem").path, "-out",
            work.path("csr.pem").path, "-config", config.path,
        ])
        try #require(made.status == 0, "\(made)")

        let signed = try ProcessRunner.run(
            SFTSBinary.url,
            ["ca", "sign", work.path("csr.pem").path, "--root", server.root.path, "--out", work.path("cert.pem").path],
            environment: ["SFTS_PKI_PASSPHRASE": TestSecrets.pkiPassphrase])
        #expect(signed.status == 0, "\(signed)")
        let text = try runOpenSSL(["x509", "-in", work.path("cert.pem").path, "-noout", "-text"]).standardOutput
        #expect(text.contains("CA:FALSE"))
        #expect(!text.contains("CA:TRUE"))
        #expect(!text.contains("Certificate Sign"))
        #expect(!text.contains("TLS Web Server Authentication"))
        #expect(text.contains("TLS Web Client Authentication"))
        #expect(!text.contains("evil.example"))
        #expect(!text.contains("10.0.0.1"))
        #expect(!text.contains("Name Constraints"))

        let verified = try runOpenSSL([
            "verify", "-CAfile", server.file("certificates/ca_certificate.pem").path, "-purpose", "sslclient",
            work.path("cert.pem").path,
        ])
        #expect(verified.status == 0, "\(verified)")

        // A CSR whose signature does not match its key is refused.
        let pem = try String(contentsOf: work.path("csr.pem"), encoding: .utf8)
        let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        var der = Array(try #require(Data(base64Encoded: body)))
        der[der.count - 3] ^= 0x01
        let forged =
            "-----BEGIN CERTIFICATE REQUEST-----\n"
            + Data(der).base64EncodedString(options: .lineLength64Characters)
            + "\n-----END CERTIFICATE REQUEST-----\n"
        try Data(forged.utf8).write(to: work.path("forged.pem"))
        let refused = try ProcessRunner.run(
            SFTSBinary.url, ["ca", "sign", work.path("forged.pem").path, "--root", server.root.path],
            environment: ["SFTS_PKI_PASSPHRASE": TestSecrets.pkiPassphrase])
        #expect(refused.status == 9, "\(refused)")
        #expect(refused.standardError.contains("proof of possession"))
    }

    @Test func revocationTakesEffectWithoutRestart() throws {
        let server = try TestServer()
        let alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        let bob = try TestClient(user: "bob", password: TestSecrets.bobPassword)
        #expect(try alice.enroll(server).status == 0)
        #expect(try bob.enroll(server).status == 0)
        #expect(try alice.run(["ls"]).status == 0)

        let revoked = try ProcessRunner.run(
            SFTSBinary.url, ["ca", "revoke", "alice", "--reason", "keyCompromise", "--root", server.root.path],
            environment: ["SFTS_PKI_PASSPHRASE": TestSecrets.pkiPassphrase])
        #expect(revoked.status == 0, "\(revoked)")

        let refused = try alice.run(["ls"])
        #expect(refused.status == 3, "\(refused)")
        #expect(refused.standardError.contains("revoked"))
        #expect(try bob.run(["ls"]).status == 0)
        #expect(server.isRunning)

        let crl = try runOpenSSL([
            "crl", "-in", server.file("certificates/crl.pem").path, "-CAfile",
            server.file("certificates/ca_certificate.pem").path, "-noout", "-text",
        ])
        #expect(crl.status == 0, "\(crl)")
        #expect(crl.standardError.contains("verify OK"))
        #expect(crl.standardOutput.contains("Key Compromise"))

        let listing = try server.admin(["ca", "list"]).standardOutput
        #expect(listing.contains("revoked"))
        #expect(listing.contains("bob"))
        for certificate in try FileManager.default.contentsOfDirectory(
            atPath: server.file("certificates/issued").path)
        {
            let path = server.file("certificates/issued/\(certificate)").path
            let isServer = try runOpenSSL(["x509", "-in", path, "-noout", "-subject"]).standardOutput.contains(
                "localhost")
            let verified = try runOpenSSL([
                "verify", "-CAfile", server.file("certificates/ca_certificate.pem").path, "-purpose",
                isServer ? "sslserver" : "sslclient", path,
            ])
            #expect(verified.status == 0, "\(certificate): \(verified)")
        }
    }

    @Test func renewalBeforeExpiryAndNotAfter() throws {
        let server = try TestServer(extraArguments: ["--cert-lifetime", "20s"])
        let bob = try TestClient(user: "bob", password: TestSecrets.bobPassword)
        #expect(try bob.enroll(server).status == 0)
        let before = try String(contentsOf: bob.profileFile("client_certificate.pem"), encoding: .utf8)

        let renewed = try bob.run(["renew"])
        #expect(renewed.status == 0, "\(renewed)")
        let after = try String(contentsOf: bob.profileFile("client_certificate.pem"), encoding: .utf8)
        #expect(after != before)
        // The short lifetime leaves under a third, so a command also renews on its own.
        let listing = try bob.run(["ls"])
        #expect(listing.status == 0, "\(listing)")
        #expect(listing.standardError.contains("renewed the client certificate"))

        let expiry = try runOpenSSL([
            "x509", "-in", bob.profileFile("client_certificate.pem").path, "-noout", "-enddate",
        ]).standardOutput
        #expect(expiry.contains("notAfter="))
        // Wait for the certificate to expire.
        let expired = waitUntil(40) {
            (try? self.runOpenSSL([
                "x509", "-in", bob.profileFile("client_certificate.pem").path, "-noout", "-checkend", "0",
            ]).status) == 1
        }
        try #require(expired)
        let late = try bob.run(["renew"])
        #expect(late.status == 3, "\(late)")
        #expect(late.standardError.contains("cannot be renewed"))
    }

    @Test func serverOnPKIMadeWithOpenSSL() throws {
        let work = try TemporaryFolder(prefix: "sfts-byo")
        let caExtensions = work.path("ca.cnf")
        try Data("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n".utf8).write(
            to: caExtensions)
        let serverExtensions = work.path("server.cnf")
        try Data(
            ("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                + "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n").utf8
        ).write(to: serverExtensions)
        let steps: [[String]] = [
            ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", work.path("ca.key").path],
            [
                "req", "-new", "-x509", "-key", work.path("ca.key").path, "-subj", "/CN=Example Corp CA", "-days", "30",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-out", work.path("ca.pem").path,
            ],
            ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", work.path("server.key").path],
            [
                "req", "-new", "-key", work.path("server.key").path, "-subj", "/CN=localhost", "-out",
                work.path("server.csr").path,
            ],
            [
                "x509", "-req", "-in", work.path("server.csr").path, "-CA", work.path("ca.pem").path, "-CAkey",
                work.path("ca.key").path, "-CAcreateserial", "-days", "30", "-extfile", serverExtensions.path,
                "-out", work.path("server.pem").path,
            ],
        ]
        for step in steps {
            let result = try runOpenSSL(step)
            try #require(result.status == 0, "\(step): \(result)")
        }
        let root = work.path("root")
        let imported = try ProcessRunner.run(
            SFTSBinary.url,
            [
                "ca", "import", "--root", root.path, "--ca-certificate", work.path("ca.pem").path, "--ca-key",
                work.path("ca.key").path, "--server-certificate", work.path("server.pem").path, "--server-key",
                work.path("server.key").path,
            ],
            environment: ["SFTS_PKI_PASSPHRASE": TestSecrets.pkiPassphrase])
        try #require(imported.status == 0, "\(imported)")

        let server = try TestServer(existingRoot: root)
        let alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        #expect(try alice.enroll(server).status == 0)
        #expect(try server.admin(["user", "role", "alice", "user"]).status == 0)
        try Data("made elsewhere".utf8).write(to: alice.work("byo.txt"))
        #expect(try alice.run(["put", "byo.txt"]).status == 0)
        #expect(try alice.run(["get", "byo.txt", "back.txt"]).status == 0)
        #expect(try String(contentsOf: alice.work("back.txt"), encoding: .utf8) == "made elsewhere")
        let verified = try runOpenSSL([
            "verify", "-CAfile", work.path("ca.pem").path, "-purpose", "sslclient",
            alice.profileFile("client_certificate.pem").path,
        ])
        #expect(verified.status == 0, "\(verified)")

        // Importing the same CA again, as to replace the server certificate, keeps the host code
        // and the revocations.
        server.stop()
        let revoked = try ProcessRunner.run(
            SFTSBinary.url, ["ca", "revoke", "alice", "--root", root.path],
            environment: ["SFTS_PKI_PASSPHRASE": TestSecrets.pkiPassphrase])
        #expect(revoked.status == 0, "\(revoked)")
        let again = try ProcessRunner.run(
            SFTSBinary.url,
            [
                "ca", "import", "--force", "--root", root.path, "--ca-certificate", work.path("ca.pem").path,
                "--ca-key",
                work.path("ca.key").path, "--server-certificate", work.path("server.pem").path, "--server-key",
                work.path("server.key").path,
            ],
            environment: ["SFTS_PKI_PASSPHRASE": TestSecrets.pkiPassphrase])
        #expect(again.status == 0, "\(again)")
        let codeAfter = try String(contentsOf: root.appendingPathComponent("certificates/host_code"), encoding: .utf8)
        #expect(codeAfter.trimmingCharacters(in: .whitespacesAndNewlines) == server.hostCode)
        #expect(
            try String(contentsOf: root.appendingPathComponent("certificates/revoked.json"), encoding: .utf8)
                .contains("alice"))
        let serial = try runOpenSSL([
            "x509", "-in", alice.profileFile("client_certificate.pem").path, "-noout", "-serial",
        ])
        .standardOutput.replacingOccurrences(of: "serial=", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
        let crl = try runOpenSSL([
            "crl", "-in", root.appendingPathComponent("certificates/crl.pem").path, "-noout", "-text",
        ]).standardOutput
        #expect(!serial.isEmpty)
        #expect(crl.contains(serial))
    }

    @Test func serverCertificateRotatesOnSIGHUP() throws {
        let server = try TestServer()
        let alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        #expect(try alice.enroll(server).status == 0)

        func servedSerial() throws -> String {
            let result = try runOpenSSL(["s_client", "-connect", "127.0.0.1:\(server.enrollmentPort)"])
            let pem = result.standardOutput
            let certificate = try TemporaryFolder(prefix: "sfts-served")
            try Data(pem.utf8).write(to: certificate.path("served.pem"))
            return try runOpenSSL(["x509", "-in", certificate.path("served.pem").path, "-noout", "-serial"])
                .standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let oldSerial = try servedSerial()

        // A transfer in progress while the server switches certificates.
        let big = server.file("directory/big.bin")
        #expect(FileManager.default.createFile(atPath: big.path, contents: nil))
        let handle = try FileHandle(forWritingTo: big)
        try handle.truncate(atOffset: 300 << 20)
        try handle.close()
        let download = Process()
        download.executableURL = SFTSBinary.url
        download.arguments = ["get", "big.bin", "big-copy.bin"]
        download.environment = ProcessInfo.processInfo.environment.merging(alice.environment) { $1 }
        download.currentDirectoryURL = alice.workFolder
        download.standardOutput = FileHandle.nullDevice
        download.standardError = FileHandle.nullDevice

        let rotated = try ProcessRunner.run(
            SFTSBinary.url,
            [
                "ca", "server-cert", "--root", server.root.path, "--host", "localhost", "--host", "127.0.0.1",
                "--host", "files.example", "--key-bits", "2048",
            ],
            environment: ["SFTS_PKI_PASSPHRASE": TestSecrets.pkiPassphrase])
        #expect(rotated.status == 0, "\(rotated)")
        try launchSerially(download)
        #expect(waitUntil(30) { server.log.contains(" get ") || server.log.contains("tls.established") })
        try #require(server.pid > 0)
        kill(server.pid, SIGHUP)
        #expect(waitUntil(10) { server.log.contains("server.reloaded") })
        download.waitUntilExit()
        #expect(download.terminationStatus == 0)
        #expect(
            (try? FileManager.default.attributesOfItem(atPath: alice.work("big-copy.bin").path)[.size] as? Int)
                == 300 << 20)

        let newSerial = try servedSerial()
        #expect(newSerial != oldSerial)
        #expect(try alice.run(["ls"]).status == 0)
    }
}

/// Login sessions: commands without the password until the session ends.
@Suite(.serialized)
final class LoginSessionTests {
    @Test func sessionSkipsThePasswordUntilLogout() throws {
        let server = try TestServer()
        let alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        #expect(try alice.enroll(server).status == 0)

        let login = try alice.run(["login", "--ttl", "10m"])
        #expect(login.status == 0, "\(login)")
        let keyMode =
            try FileManager.default.attributesOfItem(
                atPath: alice.profileFile("session_key.pem").path)[.posixPermissions] as? Int
        #expect(keyMode == 0o600)

        // No password anywhere: the session logs in.
        let noPassword = ["SFTS_PASSWORD": ""]
        let listing = try alice.run(["ls"], extraEnvironment: noPassword)
        #expect(listing.status == 0, "\(listing)")
        #expect(server.log.contains("method=session"))
        let timed = try alice.run(["ls"], extraEnvironment: ["SFTS_PASSWORD": "", "SFTS_TIMING": "1"])
        #expect(timed.standardError.contains("sfts: timing: key="))

        // passwd needs the password, and ends the session.
        let newPassword = "a different long passphrase now"
        let change = try alice.run(["passwd"], extraEnvironment: ["SFTS_NEW_PASSWORD": newPassword])
        #expect(change.status == 0, "\(change)")
        #expect(!FileManager.default.fileExists(atPath: alice.profileFile("session.json").path))
        #expect(try alice.run(["ls"], extraEnvironment: noPassword).status == 2)

        alice.password = newPassword
        #expect(try alice.run(["login"]).status == 0)
        let logout = try alice.run(["logout"])
        #expect(logout.status == 0)
        #expect(!FileManager.default.fileExists(atPath: alice.profileFile("session_key.pem").path))
        #expect(try alice.run(["ls"], extraEnvironment: noPassword).status == 2)
    }

    @Test func rejectedSessionFallsBackToPassword() throws {
        let server = try TestServer()
        let alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        #expect(try alice.enroll(server).status == 0)
        #expect(try alice.run(["login"]).status == 0)
        // A new ticket key on the server, as after losing certificates/session_key.
        try FileManager.default.removeItem(at: server.file("certificates/session_key"))

        let listing = try alice.run(["ls"])
        #expect(listing.status == 0, "\(listing)")
        #expect(!FileManager.default.fileExists(atPath: alice.profileFile("session.json").path))
        #expect(server.log.contains("login.session-rejected"))
        let failures = (try? String(contentsOf: server.file("auth_failures.json"), encoding: .utf8)) ?? ""
        #expect(!failures.contains("127.0.0.1"))
    }
}
