import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a program on a pseudo-terminal, as a person at a terminal would, so tests can see
/// what it does when standard input and standard error are terminals: prompts, progress bars.
public final class PseudoTerminalSession: @unchecked Sendable {
    private let master: Int32
    private let process: Process
    /// Everything the program wrote so far, as read from the terminal.
    public private(set) var transcript = ""

    /// TIOCSPTLCK and TIOCGPTN, the same on every Linux architecture that uses the generic
    /// ioctl numbering.
    private static let setLock: UInt = 0x4004_5431
    private static let getNumber: UInt = 0x8004_5430

    public init(
        _ executable: URL, _ arguments: [String], environment: [String: String], currentDirectory: URL
    ) throws {
        // posix_openpt and friends are not visible through Glibc's Swift module, so this does
        // what they do: open the multiplexer, unlock the new terminal and ask for its number.
        master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard master >= 0, ioctl(master, Self.setLock, &unlock) == 0, ioctl(master, Self.getNumber, &number) == 0
        else {
            throw HarnessError("cannot open a pseudo-terminal: \(String(cString: strerror(errno)))")
        }
        let slave = open("/dev/pts/\(number)", O_RDWR | O_NOCTTY)
        guard slave >= 0 else {
            close(master)
            throw HarnessError("cannot open the pseudo-terminal's slave side")
        }
        var size = winsize(ws_row: 24, ws_col: 120, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(slave, UInt(TIOCSWINSZ), &size)
        let handle = FileHandle(fileDescriptor: slave, closeOnDealloc: true)
        process = Process()
        // setsid makes the terminal the program's controlling terminal, so Ctrl-C typed on it
        // sends SIGINT, as in a login session.
        if let setsid = ProcessRunner.which("setsid") {
            process.executableURL = setsid
            process.arguments = ["--ctty", "--wait", executable.path] + arguments
        } else {
            process.executableURL = executable
            process.arguments = arguments
        }
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { $1 }
        merged["TERM"] = "xterm"
        process.environment = merged
        process.currentDirectoryURL = currentDirectory
        process.standardInput = handle
        process.standardOutput = handle
        process.standardError = handle
        try launchSerially(process)
        try handle.close()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        close(master)
    }

    /// Types `text` as keystrokes.
    public func type(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
    }

    /// Reads until the transcript after `offset` contains `text`, or `timeout` passes, and returns
    /// whether it appeared.
    @discardableResult
    public func waitFor(_ text: String, after offset: Int = 0, timeout: TimeInterval = 60) -> Bool {
        let deadline = Date() + timeout
        while true {
            if since(offset).contains(text) { return true }
            guard Date() < deadline, readAvailable(wait: min(0.2, deadline.timeIntervalSinceNow)) else {
                return since(offset).contains(text)
            }
        }
    }

    /// The transcript after `offset` bytes, as returned by ``mark``.
    public func since(_ offset: Int) -> String {
        String(decoding: transcript.utf8.dropFirst(offset), as: UTF8.self)
    }

    /// Reads what arrives until the program ends, then returns its exit status, or nil after
    /// `timeout`.
    public func waitForExit(timeout: TimeInterval = 60) -> Int32? {
        let deadline = Date() + timeout
        while Date() < deadline {
            if !readAvailable(wait: 0.2) && !process.isRunning {
                process.waitUntilExit()
                return process.terminationStatus
            }
        }
        return nil
    }

    /// Reads once if data arrives within `wait` seconds. Returns false when the terminal is closed
    /// and empty.
    private func readAvailable(wait: TimeInterval) -> Bool {
        var poller = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(max(0, wait) * 1000)) > 0 else { return process.isRunning }
        var buffer = [UInt8](repeating: 0, count: 8192)
        let count = read(master, &buffer, buffer.count)
        guard count > 0 else { return false }
        transcript += String(decoding: buffer[..<count], as: UTF8.self)
        return true
    }

    /// The end of the transcript so far, to wait for text that comes after it.
    public var mark: Int { transcript.utf8.count }
}
