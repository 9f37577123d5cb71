let input = '';
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  console.log(`hello from node ${process.version} as uid ${process.getuid()}`);
  console.log('input:', input || '(none)');
});
