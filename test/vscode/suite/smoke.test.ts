import * as assert from 'assert';
import * as vscode from 'vscode';

describe('smoke', () => {
  it('runs inside VS Code 1.100', () => {
    assert.ok(vscode.version.startsWith('1.100'), `unexpected VS Code version ${vscode.version}`);
  });

  it('has the extension under development loaded', () => {
    const ext = vscode.extensions.getExtension('dojobs.managed-downloads');
    assert.ok(ext, 'extension dojobs.managed-downloads is not loaded');
  });
});
