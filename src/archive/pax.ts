/**
 * PAX extended header records (POSIX.1-2001 pax format): each record is
 * "<length> <keyword>=<value>\n", where <length> is the decimal byte count of
 * the whole record including its own digits, the space and the newline.
 */
import { ArchiveError } from '../errors.js';

/** Byte length of one encoded record, as the record's own length prefix counts it. */
export function paxRecordLength(keyword: string, value: string): number {
  const body = Buffer.byteLength(` ${keyword}=${value}\n`, 'utf8');
  let length = body + String(body).length;
  // Adding the prefix can push the total to one more digit.
  if (String(length).length !== String(body).length) length = body + String(length).length;
  return length;
}

/**
 * Parses the records of one extended header strictly: every length must be
 * plain decimal, cover exactly one record that ends in "\n", and the keyword
 * must be non-empty and appear only once. Bytes after the last record must be
 * absent (the caller passes the header data without block padding).
 */
export function parsePaxRecords(data: Buffer, entry: string): Map<string, string> {
  const records = new Map<string, string>();
  let position = 0;

  const fail = (fault: string): never => {
    throw new ArchiveError(`invalid PAX extended header before entry ${entry}: ${fault} at byte ${position}`);
  };

  while (position < data.length) {
    const space = data.indexOf(0x20, position);
    if (space === -1 || space - position > 10) fail('the record length is not followed by a space');

    const digits = data.toString('latin1', position, space);
    if (!/^[1-9][0-9]*$/.test(digits)) fail(`the record length ${JSON.stringify(digits)} is not a plain decimal number`);

    const length = Number(digits);
    const end = position + length;
    if (end > data.length) fail(`the record length ${length} runs past the header end`);
    if (length < digits.length + 4 || data[end - 1] !== 0x0a) fail(`the record of length ${length} does not end in a newline`);

    const record = data.toString('utf8', space + 1, end - 1);
    const equals = record.indexOf('=');
    if (equals <= 0) fail('the record has no keyword before "="');

    const keyword = record.slice(0, equals);
    if (records.has(keyword)) fail(`the keyword ${keyword} appears twice`);
    records.set(keyword, record.slice(equals + 1));

    position = end;
  }
  return records;
}

/**
 * Parses a PAX decimal number strictly: digits only, no sign, no leading zero,
 * at most 2^53-1. Throws an ArchiveError naming the keyword and the entry.
 */
export function parsePaxNumber(value: string, keyword: string, entry: string): number {
  const parsed = Number(value);
  if (!/^(0|[1-9][0-9]{0,15})$/.test(value) || !Number.isSafeInteger(parsed)) {
    throw new ArchiveError(`invalid PAX record ${keyword}=${JSON.stringify(value)} in entry ${entry}: expected a decimal integer from 0 to 2^53-1`);
  }
  return parsed;
}
