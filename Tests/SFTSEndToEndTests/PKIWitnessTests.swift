import Foundation
import SFTSTestSupport
import Testing

/// The openssl command line as an outside witness of the certificates and the TLS policy.
@Suite(.serialized)
final class PKIWitnessTests {
    let server: TestServer
    let alice: TestClient
    let openssl: URL

    init() throws {
        openssl = try #require(ProcessRunner.which("openssl"), "the openssl command is needed")
        server = try TestServer()
        alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        let enrolled = try alice.enroll(server)
        try #require(enrolled.status == 0, "\(enrolled)")
    }

    func runOpenSSL(_ arguments: [String], environment: [String: String] = [:]) throws -> ProcessResult {
        try ProcessRunner.run(openssl, arguments, environment: environment, timeout: 30)
    }

    var caFile: String { server.file("certificates/ca_certificate.pem").path }

    @Test func opensslVerifiesIssuedCertificatePurposes() throws {
        let serverCertificate = server.file("certificates/server_certificate.pem").path
        let clientCertificate = alice.profileFile("client_certificate.pem").path

        let serverOK = try runOpenSSL(["verify", "-CAfile", caFile, "-purpose", "sslserver", serverCertificate])
        #expect(serverOK.status == 0, "\(serverOK)")
        #expect(serverOK.standardOutput.contains(": OK"))
        let clientOK = try runOpenSSL(["verify", "-CAfile", caFile, "-purpose", "sslclient", clientCertificate])
        #expect(clientOK.status == 0, "\(clientOK)")

        // The extended key usages keep each certificate to its own side.
        let clientAsServer = try runOpenSSL(["verify", "-CAfile", caFile, "-purpose", "sslserver", clientCertificate])
        #expect(clientAsServer.status != 0, "\(clientAsServer)")
        let serverAsClient = try runOpenSSL(["verify", "-CAfile", caFile, "-purpose", "sslclient", serverCertificate])
        #expect(serverAsClient.status != 0, "\(serverAsClient)")

        let text = try runOpenSSL(["x509", "-in", clientCertificate, "-noout", "-text"]).standardOutput
        #expect(text.contains("CA:FALSE"))
        #expect(text.contains("TLS Web Client Authentication"))
        #expect(text.contains("Digital Signature, Key Encipherment"))
        #expect(text.contains("Subject: CN = alice"))
        #expect(text.contains("X509v3 Subject Key Identifier"))
        #expect(text.contains("X509v3 Authority Key Identifier"))

        let caText = try runOpenSSL(["x509", "-in", caFile, "-noout", "-text"]).standardOutput
        #expect(caText.contains("CA:TRUE, pathlen:0"))
        #expect(caText.contains("Certificate Sign, CRL Sign"))
        let serverText = try runOpenSSL(["x509", "-in", serverCertificate, "-noout", "-text"]).standardOutput
        #expect(serverText.contains("DNS:localhost"))
        #expect(serverText.contains("IP Address:127.0.0.1"))
        #expect(serverText.contains("TLS Web Server Authentication"))
    }

    /// Runs `openssl s_client` against the file service and returns its result.
    func probe(_ extra: [String], certificate: String? = nil, key: String? = nil) throws -> ProcessResult {
        var arguments = [
            "s_client", "-connect", "127.0.0.1:\(server.filePort)", "-CAfile", caFile, "-brief",
            "-cert", certificate ?? alice.profileFile("client_certificate.pem").path,
            "-key", key ?? alice.profileFile("client_key.pem").path, "-pass", "env:SFTS_PASSWORD",
        ]
        arguments += extra
        return try runOpenSSL(arguments, environment: ["SFTS_PASSWORD": alice.password])
    }

    @Test func sClientAcceptsOnlyECDHEWithAESGCM() throws {
        let allowed = try probe(["-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"])
        #expect(allowed.status == 0, "\(allowed)")
        #expect(allowed.standardError.contains("ECDHE-RSA-AES256-GCM-SHA384"))

        for suite in [
            "ECDHE-RSA-AES256-SHA384", "ECDHE-RSA-AES128-SHA", "AES256-GCM-SHA384", "AES128-SHA",
            "DHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305",
        ] {
            let refused = try probe(["-tls1_2", "-cipher", suite])
            #expect(refused.status != 0, "suite \(suite) was accepted: \(refused)")
        }

        let chacha = try probe(["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"])
        #expect(chacha.status != 0, "\(chacha)")
        let tls13 = try probe(["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"])
        #expect(tls13.status == 0, "\(tls13)")
        let tls11 = try probe(["-tls1_1", "-cipher", "ALL:@SECLEVEL=0"])
        #expect(tls11.status != 0, "\(tls11)")
    }

    @Test func unknownCAClientCertificateRejectedAtHandshake() throws {
        let work = try TemporaryFolder(prefix: "sfts-rogue")
        let extensions = work.path("client.cnf")
        try Data(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
                .utf8
        )
        .write(to: extensions)
        let steps: [[String]] = [
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", work.path("ca.key").path, "-out",
                work.path("ca.pem").path, "-subj", "/CN=rogue CA", "-days", "2",
            ],
            [
                "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", work.path("client.key").path, "-out",
                work.path("client.csr").path, "-subj", "/CN=alice",
            ],
            [
                "x509", "-req", "-in", work.path("client.csr").path, "-CA", work.path("ca.pem").path, "-CAkey",
                work.path("ca.key").path, "-CAcreateserial", "-out", work.path("client.pem").path, "-days", "2",
                "-extfile", extensions.path,
            ],
            [
                "pkcs8", "-topk8", "-in", work.path("client.key").path, "-out", work.path("client-encrypted.key").path,
                "-v2", "aes-256-cbc", "-passout", "env:SFTS_PASSWORD",
            ],
        ]
        for step in steps {
            let result = try runOpenSSL(step, environment: ["SFTS_PASSWORD": alice.password])
            try #require(result.status == 0, "\(step): \(result)")
        }

        // A profile that is alice's in every way but the CA that issued the certificate.
        let rogueProfile = alice.home.appendingPathComponent("profiles/rogue")
        try FileManager.default.copyItem(at: alice.home.appendingPathComponent("profiles/default"), to: rogueProfile)
        try FileManager.default.removeItem(at: rogueProfile.appendingPathComponent("client_certificate.pem"))
        try FileManager.default.removeItem(at: rogueProfile.appendingPathComponent("client_key.pem"))
        try FileManager.default.copyItem(
            at: work.path("client.pem"), to: rogueProfile.appendingPathComponent("client_certificate.pem"))
        try FileManager.default.copyItem(
            at: work.path("client-encrypted.key"), to: rogueProfile.appendingPathComponent("client_key.pem"))

        let rejected = try alice.run(["ls", "--profile", "rogue"])
        #expect(rejected.status == 3, "\(rejected)")
        #expect(rejected.standardError.contains("rejected the client certificate"))

        let handshake = try probe(
            ["-tls1_2"], certificate: work.path("client.pem").path, key: work.path("client-encrypted.key").path)
        #expect(handshake.status != 0, "\(handshake)")
        let noCertificate = try runOpenSSL([
            "s_client", "-connect", "127.0.0.1:\(server.filePort)", "-CAfile", caFile, "-brief", "-tls1_2",
        ])
        #expect(noCertificate.status != 0, "\(noCertificate)")

        let stillServing = try alice.run(["ls"])
        #expect(stillServing.status == 0, "\(stillServing)")
        #expect(server.log.contains("tls.failed"))
    }

    @Test func wrongPasswordRejectedByServer() throws {
        // Re-encrypt the key under another password, so the key opens but the login proof is
        // made from the wrong password and only the server can tell.
        let wrong = "completely different words here"
        let key = alice.profileFile("client_key.pem")
        let reencrypted = try runOpenSSL(
            [
                "pkey", "-in", key.path, "-passin", "env:OLD", "-aes256", "-passout", "env:NEW", "-out",
                key.path + ".new",
            ],
            environment: ["OLD": alice.password, "NEW": wrong])
        try #require(reencrypted.status == 0, "\(reencrypted)")
        try FileManager.default.removeItem(at: key)
        try FileManager.default.moveItem(atPath: key.path + ".new", toPath: key.path)

        alice.password = wrong
        let refused = try alice.run(["ls"])
        #expect(refused.status == 3, "\(refused)")
        #expect(refused.standardError.contains("wrong password"))
        #expect(server.log.contains("reason=\"wrong password\""))
        #expect(server.isRunning)
    }
}
