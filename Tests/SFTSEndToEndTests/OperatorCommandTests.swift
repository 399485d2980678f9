import Foundation
import SFTSTestSupport
import Testing

/// Operator commands run on the server host, where a wrong folder is an easy mistake.
@Suite struct OperatorCommandTests {
    /// Run outside a state root, every operator command says so, fails, and writes nothing
    /// where it ran, instead of reporting an empty server.
    @Test(arguments: [
        ["user", "list"], ["user", "remove", "bob"], ["user", "role", "bob", "user"], ["block", "list"],
        ["block", "lift", "127.0.0.1"], ["ca", "list"], ["ca", "revoke", "bob"], ["ca", "token", "bob"],
        ["ca", "tokens"],
        ["ca", "token-cancel", "bob"],
    ])
    func commandsOutsideAStateRootFail(_ command: [String]) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sfts-noroot-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try ProcessRunner.run(
            SFTSBinary.url, command, environment: ["SFTS_PKI_PASSPHRASE": "not used here"], currentDirectory: folder,
            timeout: 30)
        #expect(result.status == 1, "\(result)")
        #expect(result.standardError.contains("is not a server state root"), "\(result)")
        #expect(result.standardError.contains("pass --root"), "\(result)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
    }

    /// A damaged roles.json denies everything and sends the client an internal error rather
    /// than dropping the connection. The server log names the file, and fixing it needs no
    /// restart.
    @Test func damagedRolesFileFailsSafeAndSaysSo() throws {
        let server = try TestServer()
        let alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        let enroll = try alice.enroll(server)
        try #require(enroll.status == 0, "\(enroll)")
        let roles = server.file("roles.json")
        let original = try Data(contentsOf: roles)
        try Data("{\"user\": [\"ls\", ".utf8).write(to: roles)

        let broken = try alice.run(["ls"])
        #expect(broken.status == 8, "\(broken)")
        #expect(broken.standardError.contains("cannot read its state files"), "\(broken)")
        #expect(server.log.contains("state.unreadable"))
        #expect(server.log.contains(roles.path))
        #expect(server.isRunning)

        try original.write(to: roles)
        let fixed = try alice.run(["ls"])
        #expect(fixed.status == 0, "\(fixed)")
    }

    @Test func helpForAGroupListsItsSubcommands() throws {
        let result = try ProcessRunner.run(SFTSBinary.url, ["help", "ca"], timeout: 30)
        #expect(result.status == 0, "\(result)")
        for subcommand in ["ca init", "ca import", "ca server-cert", "ca sign", "ca token", "ca revoke", "ca list"] {
            #expect(result.standardOutput.contains("  \(subcommand) "), "missing \(subcommand)")
        }
    }
}
