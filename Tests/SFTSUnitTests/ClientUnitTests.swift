import Foundation
import SFTSTestSupport
import Testing

@testable import SFTSClient

@Suite struct LocalFileTests {
    @Test(arguments: [
        ("a", "."), ("abc.txt", "."), ("x/y", "x"), ("/a", "/"), ("/tmp/b/c", "/tmp/b"), ("b/", "."),
        ("d/e/", "d"), ("./f", "."),
    ])
    func parentFolderSplitsOwnPath(_ path: String, _ folder: String) {
        #expect(LocalFile.parentFolder(of: path) == folder)
    }

    @Test func downloadTargetInsideExistingFolder() throws {
        let folder = try TemporaryFolder()
        let target = try FileClient.downloadTarget(remote: "reports/q.pdf", localPath: folder.url.path, force: false)
        #expect(target == folder.url.path + "/q.pdf")
    }

    @Test func downloadTargetRejectsMissingFolderAndExistingFile() throws {
        let folder = try TemporaryFolder()
        #expect(throws: ClientError.self) {
            try FileClient.downloadTarget(remote: "a", localPath: folder.url.path + "/missing/", force: false)
        }
        try Data("x".utf8).write(to: folder.path("a"))
        #expect {
            try FileClient.downloadTarget(remote: "a", localPath: folder.path("a").path, force: false)
        } throws: { error in
            (error as? ClientError)?.kind == .alreadyExists
        }
        #expect(
            try FileClient.downloadTarget(remote: "a", localPath: folder.path("a").path, force: true)
                == folder.path("a").path)
    }

    @Test func remoteNameErrorsAreRejections() {
        #expect {
            _ = try ClientError.remotePath("../x")
        } throws: { error in
            (error as? ClientError)?.kind == .rejected
        }
        #expect((try? ClientError.remotePath("folder/", allowTrailingSlash: true))?.description == "folder")
    }
}
