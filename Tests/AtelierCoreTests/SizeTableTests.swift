import AtelierCore
import Testing

@Suite struct SizeTableTests {
    static let table: [(String, Int, Int)] = [
        ("1:1", 1024, 1024), ("16:9", 1344, 768), ("21:9", 1536, 640), ("3:2", 1216, 832), ("2:3", 832, 1216),
        ("4:5", 896, 1088), ("5:4", 1088, 896), ("3:4", 896, 1152), ("4:3", 1152, 896), ("9:16", 768, 1344),
        ("9:21", 640, 1536),
    ]

    @Test(arguments: table)
    func oneMegapixelMatchesDesign(ratio: String, width: Int, height: Int) {
        #expect(SizeTable.size(aspectRatio: ratio, megapixels: "1") == ImageSize(width: width, height: height))
    }

    @Test(arguments: table)
    func quarterMegapixelHalvesEachSide(ratio: String, width: Int, height: Int) {
        #expect(SizeTable.size(aspectRatio: ratio, megapixels: "0.25") == ImageSize(width: width / 2, height: height / 2))
    }

    @Test func everySizeIsAMultipleOf16() {
        for ratio in SizeTable.aspectRatios {
            for mp in SizeTable.megapixels {
                let s = SizeTable.size(aspectRatio: ratio, megapixels: mp)!
                #expect(s.width % 16 == 0 && s.height % 16 == 0, "\(ratio) \(mp)")
            }
        }
    }

    @Test func unknownRatioOrMegapixelsHasNoSize() {
        #expect(SizeTable.size(aspectRatio: "2:1", megapixels: "1") == nil)
        #expect(SizeTable.size(aspectRatio: "1:1", megapixels: "2") == nil)
    }

    @Test func customSidesRoundUpTo16() {
        #expect(SizeTable.roundUpToMultipleOf16(256) == 256)
        #expect(SizeTable.roundUpToMultipleOf16(257) == 272)
        #expect(SizeTable.roundUpToMultipleOf16(1000) == 1008)
        #expect(SizeTable.roundUpToMultipleOf16(1440) == 1440)
    }

    @Test func theWarmUpListHoldsEveryTableSizeOnceWithOneMegapixelSquareFirst() {
        let sizes = SizeTable.allSizes
        #expect(sizes.first == ImageSize(width: 1024, height: 1024))
        #expect(sizes.count == SizeTable.aspectRatios.count * SizeTable.megapixels.count)
        #expect(Set(sizes.map(\.description)).count == sizes.count)
        #expect(sizes.contains(ImageSize(width: 512, height: 512)))
    }
}
