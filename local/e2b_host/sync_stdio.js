// Preloaded into the sandbox's node runner (node --require): stdout and stderr written
// synchronously. Node queues writes to a pipe in memory while the event loop is busy, so a cell
// that never yields (`while (true) console.log(x)`) would grow that queue until it is killed and
// its output lost unseen; written synchronously, the output flows and is counted and capped.
'use strict';
const fs = require('fs');

function writeAll(fd, chunk, encoding) {
  const data = typeof chunk === 'string' ? Buffer.from(chunk, encoding || 'utf8') : Buffer.from(chunk);
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += fs.writeSync(fd, data, offset, data.length - offset);
    } catch (err) {
      if (err.code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); // the reader is behind
    }
  }
}

for (const [stream, fd] of [[process.stdout, 1], [process.stderr, 2]]) {
  stream.write = (chunk, encoding, callback) => {
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    writeAll(fd, chunk, encoding);
    if (typeof callback === 'function') process.nextTick(callback);
    return true;
  };
}
