package io.pegaflow.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class ByteSizeTest {

    @ParameterizedTest(name = "\"{0}\" is {1} bytes")
    @CsvSource(delimiter = '|', textBlock = """
            1073741824           | 1073741824
            1                    | 1
            1b                   | 1
            1kb                  | 1024
            1KB                  | 1024
            1kib                 | 1024
            512mb                | 536870912
            512MiB               | 536870912
            1gb                  | 1073741824
            1GiB                 | 1073741824
            2tb                  | 2199023255552
            1.5tb                | 1649267441664
            0.5gb                | 536870912
            .5kb                 | 512
            0.5 gb               | 536870912
            '  256 mb  '         | 268435456
            9223372036854775807  | 9223372036854775807
            8388607tb            | 9223370937343148032
            """)
    void shouldParseBytesAndBinaryUnits(String text, long bytes) {
        assertEquals(bytes, ByteSize.parse(text));
    }

    @Test
    void shouldAcceptATabBetweenNumberAndUnit() {
        assertEquals(1536, ByteSize.parse("1.5\tkb"));
    }

    @ParameterizedTest(name = "\"{0}\" is rejected")
    @ValueSource(
            strings = {
                "",
                "   ",
                "0",
                "0kb",
                "0.0gb",
                "-1",
                "-1gb",
                "+1gb",
                "10zb",
                "10 pb",
                "1.5",
                "0.3kb",
                "1e9",
                "1E3kb",
                "nan",
                "NaN",
                "inf",
                "Infinity",
                "9223372036854775808",
                "8388608tb",
                "1..5gb",
                "1.gb",
                "gb",
                "1 000",
                "1,5gb",
                "1gb2",
                "1 g b",
                "0x10"
            })
    void shouldRejectMalformedZeroNegativeFractionalAndOverflowingSizes(String text) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ByteSize.parse(text));
        assertEquals(true, e.getMessage().contains(" is not a size ("), e.getMessage());
    }

    @ParameterizedTest(name = "[{index}] \"{0}\"")
    @CsvSource(delimiter = '|', textBlock = """
            10zb      | "10zb" is not a size (use bytes or a number with b, kb, mb, gb, tb)
            ''        | "" is not a size (empty; use bytes or a number with b, kb, mb, gb, tb)
            -1gb      | "-1gb" is not a size (must be positive)
            0         | "0" is not a size (must be positive)
            0.3kb     | "0.3kb" is not a size (not a whole number of bytes: 307.2)
            8388608tb | "8388608tb" is not a size (larger than 9223372036854775807 bytes)
            """)
    void shouldSayWhyASizeIsRejected(String text, String message) {
        assertEquals(
                message,
                assertThrows(IllegalArgumentException.class, () -> ByteSize.parse(text))
                        .getMessage());
    }

    @ParameterizedTest(name = "{0} bytes is \"{1}\"")
    @CsvSource(delimiter = '|', textBlock = """
            0                   | 0 B
            1                   | 1 B
            1023                | 1023 B
            1024                | 1 KiB
            1536                | 1.5 KiB
            1048575             | 1 MiB
            268435456           | 256 MiB
            1610612736          | 1.5 GiB
            1099511627776       | 1 TiB
            1431655765          | 1.33 GiB
            9223372036854775807 | 8388608 TiB
            """)
    void shouldFormatWithBinaryUnitsAndAtMostTwoDecimals(long bytes, String text) {
        assertEquals(text, ByteSize.format(bytes));
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(longs = {1, 1024, 1536, 268435456, 1610612736, 1099511627776L, 3298534883328L})
    void shouldParseBackWhatItFormatsWhenNothingWasRounded(long bytes) {
        assertEquals(bytes, ByteSize.parse(ByteSize.format(bytes)));
    }

    @Test
    void shouldRefuseToFormatNegativeSizes() {
        assertThrows(IllegalArgumentException.class, () -> ByteSize.format(-1));
    }
}
