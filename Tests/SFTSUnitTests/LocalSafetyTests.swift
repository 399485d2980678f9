import Foundation
import SFTSProtocol
import Testing

@testable import SFTSClient
@testable import SFTSCommands

#if canImport(Glibc)
    import Glibc
#endif

/// A temporary folder, removed with everything in it when the test ends.
private final class ScratchFolder {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("sfts-safety-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    func file(_ name: String, _ text: String = "data") throws -> String {
        let file = path + "/" + name
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        return file
    }
}

/// What the client must not trust: server text shown on a terminal or in JSON, and local
/// paths that change between planning a recursive transfer and moving each file.
@Suite struct TerminalAndJSONSafetyTests {
    @Test func diagnosticsEscapeEscapeSequencesButKeepLineEnds() {
        let text = "record says 00\u{1B}]0;title\u{07}\u{1B}[31mred\n\tnext\u{9B}2J"
        let safe = Console.terminalSafe(text)
        #expect(!safe.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x9B })
        #expect(safe == "record says 00\\u{1B}]0;title\\u{7}\\u{1B}[31mred\n\tnext\\u{9B}2J")
    }

    /// Line readers such as Python's splitlines also split at NEL, C1 controls and the Unicode
    /// separators, so those are escaped too.
    @Test func jsonLinesEscapeEveryLineBreakingCharacter() throws {
        let name = "a\u{85}b\u{2028}c\u{2029}d\u{9B}e\u{7F}f"
        let line = ClientOutput.jsonLine(["name": name])
        #expect(line == #"{"name":"a\u0085b\u2028c\u2029d\u009be\u007ff"}"#)
        let decoded = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
        #expect(decoded?["name"] == name)
    }

    @Test func protocolErrorsEscapeWhatThePeerSent() {
        let error = ProtocolError.unexpectedMessage(expected: "list-result", received: "x\u{1B}[2J")
        #expect(error.description == "expected a list-result message, received x\\u{1B}[2J")
    }
}

@Suite struct ShellInputSafetyTests {
    @Test func aNULCharacterIsRefusedInsteadOfCuttingAPath() {
        #expect(throws: UsageError.self) { try CommandWords.split("put a\u{0}zzz remote") }
    }

    @Test func aLeadingTildeIsTheHomeFolder() {
        let home = ProcessInfo.processInfo.environment["HOME"] ?? ""
        #expect(ShellSession.localPath("~") == home)
        #expect(ShellSession.localPath("~/Downloads") == home + "/Downloads")
        #expect(ShellSession.localPath("~bob/x") == "~bob/x")
        #expect(ShellSession.localPath("a/~/b") == "a/~/b")
    }

    /// Bytes that trickle in without a line end must not put off the keepalive: a byte every
    /// 20 ms for 0.6 s, with an idle period of 0.15 s, still gives idle calls.
    @Test func tricklingInputDoesNotPutOffTheIdleCallback() throws {
        var descriptors: [Int32] = [0, 0]
        #expect(pipe(&descriptors) == 0)
        let writer = descriptors[1]
        let input = LineInput(descriptor: descriptors[0], closes: true)
        let trickle = Thread {
            for index in 0..<30 {
                let bytes = Array((index == 29 ? "a\n" : "a").utf8)
                _ = bytes.withUnsafeBytes { write(writer, $0.baseAddress, $0.count) }
                usleep(20_000)
            }
            close(writer)
        }
        trickle.start()
        var idleCalls = 0
        let line = try input.readLine(idle: 0.15) { idleCalls += 1 }
        #expect(line == String(repeating: "a", count: 30))
        #expect(idleCalls >= 2)
    }

    @Test func durationsAreSpokenInTheirLargestUnit() {
        #expect(ParsedArguments.spoken(12 * 3600) == "12 hours")
        #expect(ParsedArguments.spoken(60) == "1 minute")
        #expect(ParsedArguments.spoken(30 * 86400) == "30 days")
        #expect(ParsedArguments.spoken(90) == "90 s")
    }
}

@Suite struct RecursiveTransferLocalSafetyTests {
    /// Two local names that are one name in NFC would be one remote file, so the plan fails.
    @Test func namesEqualAfterNormalisationAreRefused() throws {
        let scratch = try ScratchFolder()
        try FileManager.default.createDirectory(atPath: scratch.path + "/docs", withIntermediateDirectories: true)
        _ = try scratch.file("docs/\u{E9}.txt", "precomposed")
        _ = try scratch.file("docs/e\u{301}.txt", "decomposed")
        let error = #expect(throws: ClientError.self) {
            _ = try FileClient.uploadPlan(localFolder: scratch.path + "/docs", remoteFolder: nil)
        }
        #expect(error?.kind == .rejected)
        #expect(error?.message.contains("nothing was sent") == true)
    }

    @Test func aPlannedFileSwappedForALinkIsNotRead() throws {
        let scratch = try ScratchFolder()
        let secret = try scratch.file("secret.txt", "outside")
        let planned = try scratch.file("planned.txt")
        var status = stat()
        #expect(lstat(planned, &status) == 0)
        let identity = FileIdentity(status)
        #expect(unlink(planned) == 0)
        #expect(symlink(secret, planned) == 0)
        #expect(throws: ClientError.self) { _ = try LocalFile.openForReading(planned, identity: identity) }
    }

    @Test func aPlannedFileSwappedForAnotherFileIsNotRead() throws {
        let scratch = try ScratchFolder()
        let planned = try scratch.file("planned.txt")
        var status = stat()
        #expect(lstat(planned, &status) == 0)
        let identity = FileIdentity(status)
        let other = try scratch.file("other.txt", "replacement")
        #expect(rename(other, planned) == 0)
        #expect(throws: ClientError.self) { _ = try LocalFile.openForReading(planned, identity: identity) }
    }

    /// Opening a FIFO must fail at once instead of waiting for a writer.
    @Test func aFIFOIsRefusedWithoutBlocking() throws {
        let scratch = try ScratchFolder()
        let fifo = scratch.path + "/pipe"
        #expect(mkfifo(fifo, 0o600) == 0)
        let error = #expect(throws: ClientError.self) { _ = try LocalFile.openForReading(fifo) }
        #expect(error?.message.contains("not a regular file") == true)
    }

    @Test func aFolderNeedsRecursion() throws {
        let scratch = try ScratchFolder()
        let error = #expect(throws: ClientError.self) { _ = try LocalFile.openForReading(scratch.path) }
        #expect(error?.kind == .invalidInput)
        #expect(error?.message.contains("use -r") == true)
    }

    /// A folder made for `get -r` and then swapped for a link elsewhere receives nothing: the
    /// download and the folders below it stay in the planned place or fail.
    @Test func aDownloadFolderSwappedForALinkReceivesNothing() throws {
        let scratch = try ScratchFolder()
        let outside = scratch.path + "/outside"
        #expect(mkdir(outside, 0o700) == 0)
        let destination = scratch.path + "/dest"
        var plan = TreePlan(top: destination)
        plan.folders = [destination, destination + "/sub"]
        plan.files = [TreeItem(local: destination + "/sub/x.txt", remote: "t/sub/x.txt", size: 1)]
        try FileClient.createFolders(of: &plan)
        let folderIdentity = try #require(plan.files[0].identity)
        #expect(rmdir(destination + "/sub") == 0)
        #expect(symlink(outside, destination + "/sub") == 0)
        #expect(throws: ClientError.self) {
            _ = try LocalFile.Download(target: destination + "/sub/x.txt", folderIdentity: folderIdentity)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)

        var deeper = TreePlan(top: destination)
        deeper.folders = [destination, destination + "/sub", destination + "/sub/deeper"]
        #expect(throws: ClientError.self) { try FileClient.createFolders(of: &deeper) }
    }

    /// `get projects` where a local folder `projects` is in the way: the hint is -r or another
    /// destination, not --force, which could not replace a folder.
    @Test func aDownloadOntoALocalFolderNamesTheFolder() throws {
        let scratch = try ScratchFolder()
        #expect(mkdir(scratch.path + "/projects", 0o700) == 0)
        #expect(mkdir(scratch.path + "/projects/projects", 0o700) == 0)
        let error = #expect(throws: ClientError.self) {
            _ = try FileClient.downloadTarget(remote: "projects", localPath: scratch.path + "/projects", force: true)
        }
        #expect(error?.kind == .alreadyExists)
        #expect(error?.message.contains("is a local folder") == true)
        #expect(error?.message.contains("-r") == true)
    }
}

/// Signal handling while a transfer runs.
@Suite(.serialized) struct InterruptCleanupTests {
    private func handler(of signal: Int32) -> Int {
        var current = sigaction()
        sigaction(signal, nil, &current)
        return current.__sigaction_handler.sa_handler.map { unsafeBitCast($0, to: Int.self) } ?? 0
    }

    /// `nohup` starts a program with SIGHUP ignored; a transfer must not start catching it.
    @Test func anIgnoredSignalStaysIgnored() {
        var ignore = sigaction()
        ignore.__sigaction_handler.sa_handler = SIG_IGN
        var saved = sigaction()
        sigaction(SIGHUP, &ignore, &saved)
        defer { sigaction(SIGHUP, &saved, nil) }
        let ignored = handler(of: SIGHUP)
        InterruptCleanup.register()
        #expect(handler(of: SIGHUP) == ignored)
        #expect(handler(of: SIGTERM) != unsafeBitCast(SIG_DFL, to: Int.self))
        InterruptCleanup.clear()
        #expect(handler(of: SIGHUP) == ignored)
        #expect(handler(of: SIGTERM) == unsafeBitCast(SIG_DFL, to: Int.self))
    }
}
