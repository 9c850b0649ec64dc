/**
 * A minimal RFB 3.8 (VNC) server over any byte stream, for the simulator's VM consoles. It speaks
 * the real protocol (version handshake, security type None, ServerInit, SetPixelFormat,
 * SetEncodings, FramebufferUpdateRequest answered with Raw rectangles in the client's pixel
 * format, key and pointer events), so noVNC and any VNC client work against a simulated VM. The
 * screen shows the VM's name and echoes what is typed, which proves input reaches the "guest".
 */
import type { Duplex } from 'node:stream';

export const RFB_VERSION = 'RFB 003.008\n';
const WIDTH = 480;
const HEIGHT = 160;
const SCALE = 2;
const MAX_INPUT = 36;

/** 5×7 glyphs, one string of 35 bits (rows of 5) per character; lower case is drawn as upper. */
const FONT: Record<string, string> = {
  A: '01110100011000111111100011000110001',
  B: '11110100011000111110100011000111110',
  C: '01110100011000010000100001000101110',
  D: '11100100101000110001100011001011100',
  E: '11111100001000011110100001000011111',
  F: '11111100001000011110100001000010000',
  G: '01110100011000010111100011000101111',
  H: '10001100011000111111100011000110001',
  I: '01110001000010000100001000010001110',
  J: '00111000100001000010000101001001100',
  K: '10001100101010011000101001001010001',
  L: '10000100001000010000100001000011111',
  M: '10001110111010110101100011000110001',
  N: '10001100011100110101100111000110001',
  O: '01110100011000110001100011000101110',
  P: '11110100011000111110100001000010000',
  Q: '01110100011000110001101011001001101',
  R: '11110100011000111110101001001010001',
  S: '01111100001000001110000010000111110',
  T: '11111001000010000100001000010000100',
  U: '10001100011000110001100011000101110',
  V: '10001100011000110001100010101000100',
  W: '10001100011000110101101011010101010',
  X: '10001100010101000100010101000110001',
  Y: '10001100010101000100001000010000100',
  Z: '11111000010001000100010001000011111',
  '0': '01110100011001110101110011000101110',
  '1': '00100011000010000100001000010001110',
  '2': '01110100010000100010001000100011111',
  '3': '11111000100010000010000011000101110',
  '4': '00010001100101010010111110001000010',
  '5': '11111100001111000001000011000101110',
  '6': '00110010001000011110100011000101110',
  '7': '11111000010001000100010000100001000',
  '8': '01110100011000101110100011000101110',
  '9': '01110100011000101111000010001001100',
  '-': '00000000000000011111000000000000000',
  _: '00000000000000000000000000000011111',
  '.': '00000000000000000000000000110001100',
  ':': '00000011000110000000011000110000000',
  '>': '10000010000010000010001000100010000',
  '/': '00000000010001000100010001000000000',
  ' ': '00000000000000000000000000000000000',
  '?': '01110100010000100010001000000000100',
};

interface PixelFormat {
  bpp: number;
  bigEndian: boolean;
  trueColour: boolean;
  max: [number, number, number];
  shift: [number, number, number];
}

/** The format we announce: 32 bpp, depth 24, little-endian, red in the low byte (noVNC's default). */
const DEFAULT_FORMAT: PixelFormat = {
  bpp: 32,
  bigEndian: false,
  trueColour: true,
  max: [255, 255, 255],
  shift: [0, 8, 16],
};

type Rgb = [number, number, number];
const BACKGROUND: Rgb = [16, 32, 64];
const TEXT: Rgb = [230, 236, 245];
const ACCENT: Rgb = [120, 200, 255];

/** The simulated screen: a palette index per pixel. */
class Screen {
  readonly pixels = new Uint8Array(WIDTH * HEIGHT);
  readonly palette: Rgb[] = [BACKGROUND, TEXT, ACCENT];

  clear(): void {
    this.pixels.fill(0);
  }

  text(x: number, y: number, s: string, colour: number): void {
    for (const ch of s.toUpperCase()) {
      const glyph = FONT[ch] ?? FONT['?'];
      for (let i = 0; i < 35; i++) {
        if (glyph[i] !== '1') continue;
        const gx = x + (i % 5) * SCALE;
        const gy = y + Math.floor(i / 5) * SCALE;
        for (let dy = 0; dy < SCALE; dy++)
          for (let dx = 0; dx < SCALE; dx++) {
            const px = gx + dx;
            const py = gy + dy;
            if (px < WIDTH && py < HEIGHT) this.pixels[py * WIDTH + px] = colour;
          }
      }
      x += 6 * SCALE;
    }
  }
}

function encodePixels(screen: Screen, f: PixelFormat): Buffer {
  const bytes = f.bpp / 8;
  const out = Buffer.alloc(WIDTH * HEIGHT * bytes);
  const values = screen.palette.map(([r, g, b]) =>
    f.trueColour
      ? (Math.round((r * f.max[0]) / 255) << f.shift[0]) |
        (Math.round((g * f.max[1]) / 255) << f.shift[1]) |
        (Math.round((b * f.max[2]) / 255) << f.shift[2])
      : 0,
  );
  for (let i = 0; i < screen.pixels.length; i++) {
    const v = values[screen.pixels[i]] >>> 0;
    const at = i * bytes;
    if (bytes === 4) f.bigEndian ? out.writeUInt32BE(v, at) : out.writeUInt32LE(v, at);
    else if (bytes === 2) f.bigEndian ? out.writeUInt16BE(v & 0xffff, at) : out.writeUInt16LE(v & 0xffff, at);
    else out[at] = v & 0xff;
  }
  return out;
}

function pixelFormatBytes(f: PixelFormat): Buffer {
  const b = Buffer.alloc(16);
  b[0] = f.bpp;
  b[1] = f.bpp === 32 ? 24 : f.bpp;
  b[2] = f.bigEndian ? 1 : 0;
  b[3] = f.trueColour ? 1 : 0;
  b.writeUInt16BE(f.max[0], 4);
  b.writeUInt16BE(f.max[1], 6);
  b.writeUInt16BE(f.max[2], 8);
  b[10] = f.shift[0];
  b[11] = f.shift[1];
  b[12] = f.shift[2];
  return b;
}

function parsePixelFormat(b: Buffer): PixelFormat {
  return {
    bpp: b[0],
    bigEndian: b[2] !== 0,
    trueColour: b[3] !== 0,
    max: [b.readUInt16BE(4), b.readUInt16BE(6), b.readUInt16BE(8)],
    shift: [b[10], b[11], b[12]],
  };
}

/** Bytes each client message needs once its type byte is known (undefined: not complete yet). */
function clientMessageLength(buf: Buffer): number | undefined {
  switch (buf[0]) {
    case 0: // SetPixelFormat
      return 20;
    case 2: // SetEncodings
      return buf.length < 4 ? undefined : 4 + 4 * buf.readUInt16BE(2);
    case 3: // FramebufferUpdateRequest
      return 10;
    case 4: // KeyEvent
      return 8;
    case 5: // PointerEvent
      return 6;
    case 6: // ClientCutText
      return buf.length < 8 ? undefined : 8 + buf.readUInt32BE(4);
    default:
      return -1;
  }
}

/**
 * Serves one RFB session on `stream` for the VM `name` until the stream closes. Protocol errors
 * (an unknown version or message) end the stream, as a real server drops such a client.
 */
export function serveRfb(stream: Duplex, name: string): void {
  type Phase = 'version' | 'security' | 'init' | 'normal';
  let phase: Phase = 'version';
  let buf: Buffer = Buffer.alloc(0);
  let format = DEFAULT_FORMAT;
  let input = '';
  let pendingIncremental = false;
  let dirty = true;
  const screen = new Screen();

  const draw = () => {
    screen.clear();
    screen.text(12, 14, 'Nimbostack simulator', 2);
    screen.text(12, 44, `VM ${name}`.slice(0, 38), 1);
    screen.text(12, 74, 'simulated console', 1);
    screen.text(12, 114, `> ${input}_`, 2);
  };
  draw();

  const sendFrame = () => {
    const header = Buffer.alloc(16);
    header[0] = 0; // FramebufferUpdate
    header.writeUInt16BE(1, 2);
    header.writeUInt16BE(0, 4);
    header.writeUInt16BE(0, 6);
    header.writeUInt16BE(WIDTH, 8);
    header.writeUInt16BE(HEIGHT, 10);
    header.writeInt32BE(0, 12); // Raw
    stream.write(Buffer.concat([header, encodePixels(screen, format)]));
    dirty = false;
  };

  const fail = (why: string) => {
    stream.destroy(new Error(why));
  };

  const onMessage = (msg: Buffer) => {
    switch (msg[0]) {
      case 0: {
        const f = parsePixelFormat(msg.subarray(4, 20));
        if (![8, 16, 32].includes(f.bpp) || !f.trueColour) return fail('unsupported pixel format');
        format = f;
        dirty = true;
        return;
      }
      case 3: {
        const incremental = msg[1] !== 0;
        if (!incremental || dirty) sendFrame();
        else pendingIncremental = true;
        return;
      }
      case 4: {
        const down = msg[1] !== 0;
        const key = msg.readUInt32BE(4);
        if (!down) return;
        if (key === 0xff08) input = input.slice(0, -1);
        else if (key === 0xff0d) input = '';
        else if (key >= 0x20 && key < 0x7f && input.length < MAX_INPUT) input += String.fromCharCode(key);
        else return;
        draw();
        dirty = true;
        if (pendingIncremental) {
          pendingIncremental = false;
          sendFrame();
        }
        return;
      }
      default:
        return; // SetEncodings (Raw is always allowed), pointer and cut text change nothing here
    }
  };

  const consume = () => {
    for (;;) {
      if (phase === 'version') {
        if (buf.length < 12) return;
        const version = buf.subarray(0, 12).toString('latin1');
        buf = buf.subarray(12);
        if (!/^RFB 003\.00[378]\n$/.test(version)) return fail('unsupported RFB version');
        // One security type: None.
        stream.write(Buffer.from([1, 1]));
        phase = 'security';
      } else if (phase === 'security') {
        if (buf.length < 1) return;
        const chosen = buf[0];
        buf = buf.subarray(1);
        if (chosen !== 1) {
          const reason = Buffer.from('only security type None is offered');
          const out = Buffer.alloc(8 + reason.length);
          out.writeUInt32BE(1, 0);
          out.writeUInt32BE(reason.length, 4);
          reason.copy(out, 8);
          stream.end(out);
          return;
        }
        stream.write(Buffer.from([0, 0, 0, 0]));
        phase = 'init';
      } else if (phase === 'init') {
        if (buf.length < 1) return;
        buf = buf.subarray(1); // shared flag: every session sees the same screen
        const title = Buffer.from(name, 'utf8');
        const init = Buffer.alloc(24 + title.length);
        init.writeUInt16BE(WIDTH, 0);
        init.writeUInt16BE(HEIGHT, 2);
        pixelFormatBytes(DEFAULT_FORMAT).copy(init, 4);
        init.writeUInt32BE(title.length, 20);
        title.copy(init, 24);
        stream.write(init);
        phase = 'normal';
      } else {
        if (buf.length < 1) return;
        const length = clientMessageLength(buf);
        if (length === -1) return fail(`unknown RFB client message ${buf[0]}`);
        if (length === undefined || buf.length < length) return;
        const msg = buf.subarray(0, length);
        buf = buf.subarray(length);
        onMessage(msg);
      }
    }
  };

  stream.on('data', (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    consume();
  });
  stream.on('error', () => undefined);
  stream.write(RFB_VERSION);
}
