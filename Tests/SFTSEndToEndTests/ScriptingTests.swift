import Foundation
import SFTSTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// What scripts and people at a terminal rely on, against the real binary: JSON results,
/// recursive transfers, the shell in batch and interactive use, progress and completion.
@Suite(.serialized)
struct ScriptingTests {
    /// A server and alice, enrolled and given the `user` role.
    static func uploader(_ server: TestServer) throws -> TestClient {
        let alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        let enroll = try alice.enroll(server)
        try #require(enroll.status == 0, "\(enroll)")
        let promote = try server.admin(["user", "role", "alice", "user"])
        try #require(promote.status == 0, "\(promote)")
        return alice
    }

    static func jsonLines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
            return try #require(object as? [String: Any], "not an object: \(line)")
        }
    }

    static func listing(_ folder: URL) throws -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: folder.path)
        return (enumerator?.allObjects as? [String] ?? []).sorted()
    }

    @Test func jsonResultsOnePerLine() throws {
        let server = try TestServer()
        let alice = try Self.uploader(server)
        let data = try randomFile(alice.work("report.bin"), bytes: 70_000)

        let put = try alice.run(["put", "--json", "report.bin", "reports/q3.bin"])
        #expect(put.status == 0, "\(put)")
        let putLines = try Self.jsonLines(put.standardOutput)
        #expect(putLines.count == 1)
        #expect(putLines.first?["event"] as? String == "put")
        #expect(putLines.first?["remote"] as? String == "reports/q3.bin")
        #expect(putLines.first?["size"] as? Int == 70_000)
        #expect(putLines.first?["sha256"] as? String == sha256Hex(data))

        let list = try alice.run(["ls", "--json", "reports"])
        #expect(list.status == 0, "\(list)")
        let entries = try Self.jsonLines(list.standardOutput)
        #expect(entries.count == 1)
        #expect(entries.first?["name"] as? String == "q3.bin")
        #expect(entries.first?["kind"] as? String == "file")
        #expect(entries.first?["uploader"] as? String == "alice")
        #expect(entries.first?["sha256"] as? String == sha256Hex(data))

        let get = try alice.run(["get", "--json", "reports/q3.bin", "copy.bin"])
        #expect(get.status == 0, "\(get)")
        let got = try Self.jsonLines(get.standardOutput).first
        #expect(got?["event"] as? String == "get")
        #expect((got?["signer"] as? String)?.hasPrefix("CN=localhost") == true)
        #expect(try Data(contentsOf: alice.work("copy.bin")) == data)

        // A failure still ends with a JSON line that names the exit code, and the exit code
        // is the documented one.
        let missing = try alice.run(["get", "--json", "reports/none.bin"])
        #expect(missing.status == 5, "\(missing)")
        let failure = try Self.jsonLines(missing.standardOutput).first
        #expect(failure?["event"] as? String == "error")
        #expect(failure?["exit"] as? Int == 5)
        #expect(missing.standardError.contains("not found"))

        let remove = try alice.run(["rm", "--json", "reports/q3.bin"])
        #expect(remove.status == 0, "\(remove)")
        #expect(try Self.jsonLines(remove.standardOutput).first?["event"] as? String == "rm")
    }

    @Test func putIntoFolderNeedsTrailingSlash() throws {
        let server = try TestServer()
        let alice = try Self.uploader(server)
        let data = try randomFile(alice.work("notes.txt"), bytes: 1_000)
        #expect(try alice.run(["put", "notes.txt", "inbox/first.txt"]).status == 0)

        // A folder is never the target of a file: the error says how to upload into it.
        let onFolder = try alice.run(["put", "notes.txt", "inbox"])
        #expect(onFolder.status == 9, "\(onFolder)")
        #expect(onFolder.standardError.contains("'inbox' is a folder"))
        #expect(onFolder.standardError.contains("end the remote name with /"))

        let intoFolder = try alice.run(["put", "notes.txt", "inbox/"])
        #expect(intoFolder.status == 0, "\(intoFolder)")
        #expect(try Data(contentsOf: server.file("directory/inbox/notes.txt")) == data)

        // A file changed on the server behind sfts no longer names its uploader.
        try Data("replaced by the operator".utf8).write(to: server.file("directory/inbox/notes.txt"))
        let get = try alice.run(["get", "--json", "inbox/notes.txt", "changed.txt"])
        #expect(get.status == 0, "\(get)")
        let fields = try Self.jsonLines(get.standardOutput).first
        #expect(fields?["uploader"] == nil)
        #expect(fields?["size"] as? Int == 24)
    }

    @Test func recursiveTransferKeepsRelativePaths() throws {
        let server = try TestServer()
        let alice = try Self.uploader(server)
        let tree = alice.work("project")
        let fm = FileManager.default
        try fm.createDirectory(at: tree.appendingPathComponent("src/deep"), withIntermediateDirectories: true)
        try fm.createDirectory(at: tree.appendingPathComponent("empty"), withIntermediateDirectories: true)
        let readme = try randomFile(tree.appendingPathComponent("README"), bytes: 100)
        let code = try randomFile(tree.appendingPathComponent("src/main.swift"), bytes: 5_000)
        let blob = try randomFile(tree.appendingPathComponent("src/deep/blob.bin"), bytes: 300_000)
        try fm.createSymbolicLink(atPath: tree.appendingPathComponent("link").path, withDestinationPath: "/etc/passwd")

        let put = try alice.run(["put", "-r", "project", "backup"])
        #expect(put.status == 0, "\(put)")
        #expect(put.standardError.contains("link: symbolic link, skipped"))
        #expect(put.standardError.contains("empty: empty folder"))
        #expect(try Data(contentsOf: server.file("directory/backup/src/deep/blob.bin")) == blob)
        #expect(!fm.fileExists(atPath: server.file("directory/backup/link").path))

        // Without --force, a second upload finds the files in the way and sends nothing.
        let before = try Self.listing(server.file("directory"))
        try Data("changed".utf8).write(to: tree.appendingPathComponent("README"))
        let again = try alice.run(["put", "-r", "project", "backup"])
        #expect(again.status == 6, "\(again)")
        #expect(again.standardError.contains("nothing was sent"))
        #expect(try Self.listing(server.file("directory")) == before)
        #expect(try Data(contentsOf: server.file("directory/backup/README")) == readme)

        let get = try alice.run(["get", "-r", "backup", "restored"])
        #expect(get.status == 0, "\(get)")
        #expect(try Data(contentsOf: alice.work("restored/README")) == readme)
        #expect(try Data(contentsOf: alice.work("restored/src/main.swift")) == code)
        #expect(try Data(contentsOf: alice.work("restored/src/deep/blob.bin")) == blob)
        #expect(try Self.listing(alice.work("restored")).count == 5)

        // A second download is rejected before anything is fetched, and --force replaces.
        try Data("local edit".utf8).write(to: alice.work("restored/src/main.swift"))
        let refused = try alice.run(["get", "-r", "backup", "restored"])
        #expect(refused.status == 6, "\(refused)")
        #expect(try String(contentsOf: alice.work("restored/src/main.swift"), encoding: .utf8) == "local edit")
        let forced = try alice.run(["get", "-r", "--force", "--json", "backup", "restored"])
        #expect(forced.status == 0, "\(forced)")
        #expect(try Self.jsonLines(forced.standardOutput).count == 3)
        #expect(try Data(contentsOf: alice.work("restored/src/main.swift")) == code)
    }

    @Test func recursiveUploadChecksEveryNameFirst() throws {
        let server = try TestServer()
        let alice = try Self.uploader(server)
        let tree = alice.work("mixed")
        try FileManager.default.createDirectory(at: tree, withIntermediateDirectories: true)
        _ = try randomFile(tree.appendingPathComponent("a-good.txt"), bytes: 10)
        // A name the server rejects, sorted after a good one: nothing may be sent.
        _ = try randomFile(tree.appendingPathComponent("b-bad\u{7}.txt"), bytes: 10)

        let put = try alice.run(["put", "-r", "mixed"])
        #expect(put.status == 9, "\(put)")
        #expect(put.standardError.contains("control character"))
        #expect(put.standardError.contains("nothing was sent"))
        #expect(try Self.listing(server.file("directory")).isEmpty)

        let notFolder = try alice.run(["put", "-r", "mixed/a-good.txt"])
        #expect(notFolder.status == 2, "\(notFolder)")
        #expect(notFolder.standardError.contains("is not a folder"))
        #expect(server.isRunning)
    }

    @Test func batchStopsAtFirstFailure() throws {
        let server = try TestServer()
        let alice = try Self.uploader(server)
        _ = try randomFile(alice.work("one.txt"), bytes: 10)
        _ = try randomFile(alice.work("two.txt"), bytes: 10)
        let batch = alice.work("commands.txt")
        try """
        # upload, tolerate a missing file, then fail for real
        put one.txt
        -rm not-there.txt
        get missing.txt
        put two.txt
        """.write(to: batch, atomically: true, encoding: .utf8)

        let run = try alice.run(["shell", "--batch", batch.path])
        #expect(run.status == 5, "\(run)")
        #expect(run.standardError.contains("sfts> get missing.txt"))
        #expect(run.standardError.contains("batch stopped at line 4"))
        #expect(FileManager.default.fileExists(atPath: server.file("directory/one.txt").path))
        #expect(!FileManager.default.fileExists(atPath: server.file("directory/two.txt").path))
        // One connection and one login for the whole batch.
        #expect(server.log.components(separatedBy: "login.succeeded").count - 1 == 1)

        // Standard input works as a batch too, and a clean batch exits 0 with JSON results.
        let piped = try ProcessRunner.run(
            SFTSBinary.url, ["shell", "--json"], environment: alice.environment, currentDirectory: alice.workFolder,
            input: Data("ls\nput two.txt\nrm one.txt\n".utf8))
        #expect(piped.status == 0, "\(piped)")
        let events = try Self.jsonLines(piped.standardOutput).compactMap { $0["event"] as? String }
        #expect(events == ["entry", "put", "rm"])

        // passwd inside a batch: later commands go on over the same session, and the next
        // login takes the new password.
        let newPassword = "quartz meadow lantern ripple eight"
        let change = try ProcessRunner.run(
            SFTSBinary.url, ["shell"],
            environment: alice.environment.merging(["SFTS_NEW_PASSWORD": newPassword]) { $1 },
            currentDirectory: alice.workFolder, input: Data("passwd\nls\n".utf8))
        #expect(change.status == 0, "\(change)")
        #expect(change.standardOutput.contains("password changed for alice"))
        #expect(change.standardOutput.contains("two.txt"))
        alice.password = newPassword
        #expect(try alice.run(["ls"]).status == 0)
    }

    @Test func shellKeepsAnIdleSessionOpen() throws {
        // Three seconds leave room for the login's key derivation on a loaded machine, which
        // the server also waits for within the idle timeout.
        let server = try TestServer(extraArguments: ["--idle-timeout", "3"])
        let alice = try Self.uploader(server)
        let process = Process()
        process.executableURL = SFTSBinary.url
        process.arguments = ["shell"]
        process.environment = ProcessInfo.processInfo.environment.merging(alice.environment) { $1 }
        process.currentDirectoryURL = alice.workFolder
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try launchSerially(process)
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        input.fileHandleForWriting.write(Data("ls\n".utf8))
        // Silence for over twice the server's idle timeout: only the shell's pings keep the
        // connection open.
        Thread.sleep(forTimeInterval: 7)
        #expect(process.isRunning)
        _ = try randomFile(alice.work("late.txt"), bytes: 10)
        input.fileHandleForWriting.write(Data("put late.txt\n".utf8))
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("stored late.txt"))
        #expect(!server.log.contains("cut off"))
    }

    /// A user who takes longer than the idle timeout to type a new password at the prompt of
    /// `passwd` keeps the session: the shell pings while the prompt waits.
    @Test func slowPasswordPromptKeepsTheSession() throws {
        let server = try TestServer(extraArguments: ["--idle-timeout", "2"])
        let alice = try Self.uploader(server)
        let terminal = try PseudoTerminalSession(
            SFTSBinary.url, ["shell"], environment: alice.environment, currentDirectory: alice.workFolder)
        #expect(terminal.waitFor("sfts> "), "\(terminal.transcript)")
        var mark = terminal.mark
        terminal.type("passwd\n")
        #expect(terminal.waitFor("New password: ", after: mark), "\(terminal.transcript)")
        // Over twice the idle timeout at the prompt, with no command sent.
        Thread.sleep(forTimeInterval: 5)
        let newPassword = "a slowly typed new passphrase"
        mark = terminal.mark
        terminal.type(newPassword + "\n")
        #expect(terminal.waitFor("new password", after: mark), "\(terminal.transcript)")
        mark = terminal.mark
        terminal.type(newPassword + "\n")
        #expect(terminal.waitFor("sfts> ", after: mark), "\(terminal.transcript)")
        #expect(terminal.since(mark).contains("password changed for alice"), "\(terminal.transcript)")
        terminal.type("exit\n")
        #expect(terminal.waitForExit() == 0, "\(terminal.transcript)")
        #expect(!server.log.contains("cut off"))
    }

    @Test func interactiveShellOnATerminal() throws {
        let server = try TestServer()
        // bob stays 'registered': he may list and download, not upload or remove.
        let bob = try TestClient(user: "bob", password: TestSecrets.bobPassword)
        let enroll = try bob.enroll(server)
        try #require(enroll.status == 0, "\(enroll)")

        let terminal = try PseudoTerminalSession(
            SFTSBinary.url, ["shell"], environment: bob.environment, currentDirectory: bob.workFolder)
        #expect(terminal.waitFor("sfts> "), "\(terminal.transcript)")
        #expect(terminal.transcript.contains("Logged in as bob (role registered)"))

        var mark = terminal.mark
        terminal.type("help\n")
        #expect(terminal.waitFor("sfts> ", after: mark), "\(terminal.transcript)")
        let help = terminal.since(mark)
        #expect(help.contains("Commands for role registered"))
        #expect(help.contains("get [options] REMOTE [LOCAL]"))
        #expect(help.contains("ls [options] [PATH]"))
        #expect(!help.contains("put [options]"))
        #expect(!help.contains("rm REMOTE"))

        // An error keeps the session open.
        mark = terminal.mark
        terminal.type("rm anything\n")
        #expect(terminal.waitFor("sfts> ", after: mark), "\(terminal.transcript)")
        #expect(terminal.since(mark).contains("lacks the 'delete' permission"))
        mark = terminal.mark
        terminal.type("get 'no such file.txt'\n")
        #expect(terminal.waitFor("sfts> ", after: mark), "\(terminal.transcript)")
        #expect(terminal.since(mark).contains("'no such file.txt' not found"))

        // Ctrl-C drops the line being typed and keeps the session.
        mark = terminal.mark
        terminal.type("rm half-typed")
        terminal.type("\u{03}")
        #expect(terminal.waitFor("sfts> ", after: mark), "\(terminal.transcript)")
        mark = terminal.mark
        terminal.type("lpwd\n")
        #expect(terminal.waitFor("sfts> ", after: mark), "\(terminal.transcript)")
        #expect(terminal.since(mark).contains(bob.workFolder.lastPathComponent))
        #expect(!terminal.transcript.contains("'half-typed'"))

        terminal.type("exit\n")
        #expect(terminal.waitForExit() == 0, "\(terminal.transcript)")
    }

    @Test func progressBarOnlyOnATerminal() throws {
        let server = try TestServer()
        let alice = try Self.uploader(server)
        // A sparse file: large enough to take over a fifth of a second, cheap to make.
        let big = alice.work("big.img")
        #expect(FileManager.default.createFile(atPath: big.path, contents: nil))
        let handle = try FileHandle(forWritingTo: big)
        try handle.truncate(atOffset: 768 * 1024 * 1024)
        try handle.close()

        let terminal = try PseudoTerminalSession(
            SFTSBinary.url, ["put", "big.img"], environment: alice.environment, currentDirectory: alice.workFolder)
        #expect(terminal.waitForExit() == 0, "\(terminal.transcript)")
        #expect(terminal.transcript.contains("big.img 100% 768.0 MiB/768.0 MiB"), "\(terminal.transcript)")
        #expect(terminal.transcript.contains("stored big.img"))

        // Not a terminal: no progress, only the result.
        let piped = try alice.run(["get", "big.img", "copy.img"])
        #expect(piped.status == 0, "\(piped)")
        #expect(piped.standardError.isEmpty, "\(piped)")
        let quiet = try PseudoTerminalSession(
            SFTSBinary.url, ["get", "--quiet", "--force", "big.img", "copy.img"], environment: alice.environment,
            currentDirectory: alice.workFolder)
        #expect(quiet.waitForExit() == 0, "\(quiet.transcript)")
        #expect(!quiet.transcript.contains("%"), "\(quiet.transcript)")
        try? FileManager.default.removeItem(at: big)
        try? FileManager.default.removeItem(at: alice.work("copy.img"))
        _ = try alice.run(["rm", "big.img"])
    }

    @Test func completionScriptsKnowEveryCommand() throws {
        let bash = try ProcessRunner.run(SFTSBinary.url, ["completion", "bash"])
        #expect(bash.status == 0, "\(bash)")
        let folder = try TemporaryFolder(prefix: "sfts-completion")
        let script = folder.path("sfts.bash")
        try bash.standardOutput.write(to: script, atomically: true, encoding: .utf8)
        let probe = """
            source '\(script.path)'
            complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _sfts; echo "${COMPREPLY[*]}"; }
            complete_words sfts sh
            complete_words sfts ca i
            complete_words sfts put --re
            complete_words sfts shell --ba
            complete_words sfts completion ''
            """
        let bashPath = try #require(ProcessRunner.which("bash"))
        let result = try ProcessRunner.run(bashPath, ["-c", probe])
        #expect(result.status == 0, "\(result)")
        let lines = result.standardOutput.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.count >= 5, "\(result)")
        if lines.count >= 5 {
            #expect(lines[0] == "shell")
            #expect(lines[1] == "init import")
            #expect(lines[2] == "--recursive")
            #expect(lines[3] == "--batch")
            #expect(lines[4] == "bash zsh")
        }

        let zsh = try ProcessRunner.run(SFTSBinary.url, ["completion", "zsh"])
        #expect(zsh.status == 0, "\(zsh)")
        #expect(zsh.standardOutput.hasPrefix("#compdef sfts"))
        if let zshPath = ProcessRunner.which("zsh") {
            let zshScript = folder.path("_sfts")
            try zsh.standardOutput.write(to: zshScript, atomically: true, encoding: .utf8)
            let check = try ProcessRunner.run(zshPath, ["-n", zshScript.path])
            #expect(check.status == 0, "\(check)")
        }
        let unknown = try ProcessRunner.run(SFTSBinary.url, ["completion", "fish"])
        #expect(unknown.status == 2, "\(unknown)")
        #expect(unknown.standardError.contains("choose bash or zsh"))
    }

    /// systemd's own checker accepts the example unit, with the built binary in place of the
    /// installed one.
    @Test func exampleServiceUnitVerifies() throws {
        guard let analyze = ProcessRunner.which("systemd-analyze") else { return }
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let unit = try String(contentsOf: repository.appendingPathComponent("contrib/sfts.service"), encoding: .utf8)
        let folder = try TemporaryFolder(prefix: "sfts-unit")
        let copy = folder.path("sfts.service")
        try unit.replacingOccurrences(of: "/usr/local/bin/sfts", with: SFTSBinary.url.path)
            .write(to: copy, atomically: true, encoding: .utf8)
        let verify = try ProcessRunner.run(analyze, ["verify", "--man=no", copy.path])
        #expect(verify.status == 0, "\(verify)")
    }
}
