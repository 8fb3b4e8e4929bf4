import { describe, expect, it } from 'vitest';
import { cidrContainsAddress, parseCidr } from '../src/cidr.js';
import { ErrorCodes, RouteControllerError } from '../src/errors.js';
import { parseCidrList } from '../src/service-cidrs.js';

type Case =
  | { input: string; ipv4?: string[]; ipv6?: string[]; notes?: string[] }
  | { input: string; code: string; entry: string };

// SERVICE_CIDRS values, good and bad, with the exact normalised result or the error code and the entry it names.
const cases: Case[] = [
  { input: '10.96.0.0/12', ipv4: ['10.96.0.0/12'] },
  { input: 'fd00:10:96::/108', ipv6: ['fd00:10:96::/108'] },
  { input: '10.96.0.0/12,fd00:10:96::/108', ipv4: ['10.96.0.0/12'], ipv6: ['fd00:10:96::/108'] },
  { input: ' 10.96.0.0/12 , fd00:10:96::/108 ', ipv4: ['10.96.0.0/12'], ipv6: ['fd00:10:96::/108'] },
  { input: '10.96.0.0/12,,', ipv4: ['10.96.0.0/12'] },
  { input: ',10.96.0.0/12', ipv4: ['10.96.0.0/12'] },
  { input: '', ipv4: [], ipv6: [] },
  { input: ' , ', ipv4: [], ipv6: [] },
  { input: '10.96.0.1/12', ipv4: ['10.96.0.0/12'], notes: ['host-bits-cleared'] },
  { input: 'fd00:10:96::1/108', ipv6: ['fd00:10:96::/108'], notes: ['host-bits-cleared'] },
  { input: '10.96.0.0/12,10.96.0.0/12', ipv4: ['10.96.0.0/12'], notes: ['duplicate'] },
  { input: '10.96.0.0/12,10.100.0.0/16', ipv4: ['10.96.0.0/12'], notes: ['contained'] },
  { input: '10.100.0.0/16,10.96.0.0/12', ipv4: ['10.96.0.0/12'], notes: ['contained'] },
  { input: '10.96.0.0/24,10.96.0.0/16', ipv4: ['10.96.0.0/16'], notes: ['contained'] },
  { input: '10.97.0.0/16,10.96.0.0/16', ipv4: ['10.96.0.0/16', '10.97.0.0/16'] },
  { input: '10.96.0.0/25,10.96.0.128/25', ipv4: ['10.96.0.0/25', '10.96.0.128/25'] },
  { input: 'FD00:10:96:0:0:0:0:0/112', ipv6: ['fd00:10:96::/112'] },
  { input: 'fd00:10:96::/112,fd00:10:96:0::/112', ipv6: ['fd00:10:96::/112'], notes: ['duplicate'] },
  { input: 'fd00::/64,fd00::abcd:0/112', ipv6: ['fd00::/64'], notes: ['contained'] },
  { input: '10.0.0.0/8', ipv4: ['10.0.0.0/8'] },
  { input: '10.96.0.10/32', ipv4: ['10.96.0.10/32'] },
  { input: 'fd00::a/128', ipv6: ['fd00::a/128'] },
  { input: '192.168.0.0/16,10.96.0.0/12', ipv4: ['10.96.0.0/12', '192.168.0.0/16'] },
  { input: '10.96.0.0/33', code: ErrorCodes.InvalidCidr, entry: '10.96.0.0/33' },
  { input: '999.1.0.0/16', code: ErrorCodes.InvalidCidr, entry: '999.1.0.0/16' },
  { input: 'not-a-cidr', code: ErrorCodes.InvalidCidr, entry: 'not-a-cidr' },
  { input: '10.96.0.0/12;fd00::/108', code: ErrorCodes.InvalidCidr, entry: '10.96.0.0/12;fd00::/108' },
  { input: '10.96.0.0/12 fd00::/108', code: ErrorCodes.InvalidCidr, entry: '10.96.0.0/12 fd00::/108' },
  { input: '10.96.0.0', code: ErrorCodes.InvalidCidr, entry: '10.96.0.0' },
  { input: '10.96.0.0/', code: ErrorCodes.InvalidCidr, entry: '10.96.0.0/' },
  { input: '10.96.0.0/012', code: ErrorCodes.InvalidCidr, entry: '10.96.0.0/012' },
  { input: '10.96.0.0/-1', code: ErrorCodes.InvalidCidr, entry: '10.96.0.0/-1' },
  { input: '10.96/12', code: ErrorCodes.InvalidCidr, entry: '10.96/12' },
  { input: '010.96.0.0/12', code: ErrorCodes.InvalidCidr, entry: '010.96.0.0/12' },
  { input: 'fd00::/129', code: ErrorCodes.InvalidCidr, entry: 'fd00::/129' },
  { input: 'fd00::gg/112', code: ErrorCodes.InvalidCidr, entry: 'fd00::gg/112' },
  { input: '1:2:3:4:5:6:7:8:9/112', code: ErrorCodes.InvalidCidr, entry: '1:2:3:4:5:6:7:8:9/112' },
  { input: 'fd00::%eth0/112', code: ErrorCodes.InvalidCidr, entry: 'fd00::%eth0/112' },
  { input: '::ffff:10.96.0.0/108', code: ErrorCodes.InvalidCidr, entry: '::ffff:10.96.0.0/108' },
  { input: '10.96.0.0/12,bogus', code: ErrorCodes.InvalidCidr, entry: 'bogus' },
  { input: '0.0.0.0/0', code: ErrorCodes.CidrTooBroad, entry: '0.0.0.0/0' },
  { input: '::/0', code: ErrorCodes.CidrTooBroad, entry: '::/0' },
  { input: '10.0.0.0/7', code: ErrorCodes.CidrTooBroad, entry: '10.0.0.0/7' },
  { input: 'fd00::/48', code: ErrorCodes.CidrTooBroad, entry: 'fd00::/48' },
  { input: '10.96.0.0/12,0.0.0.0/1', code: ErrorCodes.CidrTooBroad, entry: '0.0.0.0/1' },
];

describe('SERVICE_CIDRS parsing and normalisation', () => {
  it('has at least 30 cases', () => expect(cases.length).toBeGreaterThanOrEqual(30));

  for (const testCase of cases) {
    if ('code' in testCase) {
      it(`refuses ${JSON.stringify(testCase.input)} with ${testCase.code}`, () => {
        let caught: unknown;
        try {
          parseCidrList(testCase.input);
        } catch (error) {
          caught = error;
        }
        expect(caught).toBeInstanceOf(RouteControllerError);
        const error = caught as RouteControllerError;
        expect(error.code).toBe(testCase.code);
        expect(error.details.entry).toBe(testCase.entry);
        expect(error.message).toContain(`"${testCase.entry}"`);
        expect(error.hint).toBeTruthy();
      });
    } else {
      it(`accepts ${JSON.stringify(testCase.input)}`, () => {
        const { cidrs, notes } = parseCidrList(testCase.input);
        expect(cidrs.ipv4.map((c) => c.text)).toEqual(testCase.ipv4 ?? []);
        expect(cidrs.ipv6.map((c) => c.text)).toEqual(testCase.ipv6 ?? []);
        expect(notes.map((n) => n.kind)).toEqual(testCase.notes ?? []);
      });
    }
  }

  it('the hint for a wrong separator says to use commas', () => {
    expect(() => parseCidrList('10.96.0.0/12;fd00::/108')).toThrow(
      expect.objectContaining({ hint: expect.stringContaining('commas') }),
    );
  });

  it('the hint for a too-broad range names the widest prefix accepted', () => {
    expect(() => parseCidrList('10.0.0.0/7')).toThrow(expect.objectContaining({ hint: expect.stringContaining('/8') }));
  });
});

describe('parseCidr', () => {
  it('gives integer bounds for ordering and containment', () => {
    const { cidr } = parseCidr('10.96.0.0/12');
    expect(cidr.first).toBe(0x0a600000n);
    expect(cidr.last).toBe(0x0a6fffffn);
    expect(cidr.family).toBe('ipv4');
  });

  it('tests address membership', () => {
    const v4 = parseCidr('10.96.0.0/12').cidr;
    const v6 = parseCidr('fd00:10:96::/112').cidr;
    expect(cidrContainsAddress(v4, '10.111.255.255')).toBe(true);
    expect(cidrContainsAddress(v4, '10.112.0.0')).toBe(false);
    expect(cidrContainsAddress(v4, 'fd00:10:96::1')).toBe(false);
    expect(cidrContainsAddress(v6, 'fd00:10:96::ffff')).toBe(true);
    expect(cidrContainsAddress(v6, 'fe80::1%eth0')).toBe(false);
    expect(cidrContainsAddress(v6, 'garbage')).toBe(false);
  });
});
