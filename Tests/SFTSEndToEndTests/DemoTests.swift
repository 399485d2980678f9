import Foundation
import SFTSTestSupport
import Testing

/// `sfts demo` is the README's quickstart, so it must keep working.
@Suite struct DemoTests {
    @Test func demoRunsEveryStep() throws {
        let result = try ProcessRunner.run(SFTSBinary.url, ["demo", "--key-bits", "2048"], timeout: 180)
        #expect(result.status == 0, "\(result)")
        for step in [
            "ca init", "sfts serve", "sfts enroll", "user role alice user", "sfts put", "sfts ls -l",
            "sfts get", "identical, SHA-256", "sfts rm", "every step succeeded",
        ] {
            #expect(result.standardOutput.contains(step), "missing step '\(step)'")
        }
        let folder = try #require(
            result.standardOutput.split(separator: "\n").first?.replacingOccurrences(of: "sfts demo in ", with: ""))
        #expect(!FileManager.default.fileExists(atPath: folder))
    }
}
