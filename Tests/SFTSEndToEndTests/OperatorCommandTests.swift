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

    @Test func helpForAGroupListsItsSubcommands() throws {
        let result = try ProcessRunner.run(SFTSBinary.url, ["help", "ca"], timeout: 30)
        #expect(result.status == 0, "\(result)")
        for subcommand in ["ca init", "ca import", "ca server-cert", "ca sign", "ca token", "ca revoke", "ca list"] {
            #expect(result.standardOutput.contains("  \(subcommand) "), "missing \(subcommand)")
        }
    }
}
