import Foundation
import SFTSProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// A progress line for one transfer on a terminal: name, bytes, percentage, rate and time
/// left, redrawn in place at most five times a second. It appears once a transfer has run for
/// a fifth of a second, so small files print none, and stays with its totals when the
/// transfer completes, as scp's does.
///
/// Progress goes to standard error only when it is a terminal, so scripts and logs that
/// capture it get none.
public final class TerminalProgress {
    private let label: String
    private let descriptor: Int32
    private let started: TimeInterval
    private var lastDraw: TimeInterval
    private var drawn = false
    private var done: UInt64 = 0
    private var total: UInt64 = 0

    /// The shortest time between two redraws, in seconds.
    static let redrawInterval: TimeInterval = 0.2

    /// Returns a progress line on standard error, or nil when it is not a terminal or
    /// `quiet` is set.
    public static func onStandardError(label: String, quiet: Bool) -> TerminalProgress? {
        guard !quiet, isatty(STDERR_FILENO) == 1 else { return nil }
        return TerminalProgress(label: label, descriptor: STDERR_FILENO)
    }

    init(label: String, descriptor: Int32) {
        self.label = DisplayText.escaped(label)
        self.descriptor = descriptor
        started = Self.now()
        lastDraw = started
    }

    /// Records that `done` of `total` bytes have moved, and redraws when the last draw is old enough.
    public func update(_ done: UInt64, of total: UInt64) {
        self.done = done
        self.total = total
        let now = Self.now()
        guard now - lastDraw >= Self.redrawInterval else { return }
        lastDraw = now
        draw(now)
    }

    /// Ends the line: with its final totals when the transfer `completed`, else erased, so
    /// an error is printed on a clean line. Later calls do nothing.
    public func finish(completed: Bool) {
        guard drawn else { return }
        if completed {
            draw(Self.now())
            write("\n")
        } else {
            write("\r\u{1B}[K")
        }
        drawn = false
        InterruptCleanup.progressShown = false
        lastDraw = .infinity
    }

    private func draw(_ now: TimeInterval) {
        let line = Self.line(
            label: label, done: done, total: total, elapsed: now - started, width: Self.terminalWidth(descriptor))
        write("\r" + line + "\u{1B}[K")
        drawn = true
        InterruptCleanup.progressShown = descriptor == STDERR_FILENO
    }

    /// The progress line, cut to `width` columns from the left of the label.
    static func line(label: String, done: UInt64, total: UInt64, elapsed: TimeInterval, width: Int) -> String {
        let percent = total == 0 ? 100 : Int(Double(done) * 100 / Double(total))
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        var eta = "--:--"
        if rate > 0 && done < total {
            eta = duration(Double(total - done) / rate)
        } else if done >= total {
            eta = duration(elapsed)
        }
        let figures =
            " \(String(format: "%3d", percent))% \(byteCount(done))/\(byteCount(total)) "
            + "\(byteCount(UInt64(rate)))/s \(done >= total ? "in" : "ETA") \(eta)"
        let room = max(8, width - figures.count - 1)
        var name = label
        if name.count > room {
            name = "…" + name.suffix(room - 1)
        }
        return name + figures
    }

    /// A byte count in binary units with one decimal, such as `12.4 MiB`.
    public static func byteCount(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f ", value) + units[unit]
    }

    /// Seconds as `m:ss`, or `h:mm:ss` from an hour up.
    static func duration(_ seconds: TimeInterval) -> String {
        let whole = Int(min(seconds, 359_999).rounded())
        let (hours, minutes, rest) = (whole / 3600, whole / 60 % 60, whole % 60)
        return hours > 0
            ? String(format: "%d:%02d:%02d", hours, minutes, rest) : String(format: "%d:%02d", minutes, rest)
    }

    private func write(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }

    private static func terminalWidth(_ descriptor: Int32) -> Int {
        var size = winsize()
        guard ioctl(descriptor, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }

    private static func now() -> TimeInterval {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return TimeInterval(time.tv_sec) + TimeInterval(time.tv_nsec) / 1e9
    }
}
