"""Make sure Fashion-MNIST is on this machine: the Debian package when apt works, else the official download."""
import os, shutil, subprocess, sys
from lookbench.data import SOURCE_CANDIDATES, download_fashion_mnist, resolve_source
from lookbench.warehouse import LookbenchError

def main():
    try: return print(f"Fashion-MNIST: {resolve_source('auto')}")
    except LookbenchError: pass
    if shutil.which('apt-get'):
        sudo = [] if os.geteuid() == 0 else (['sudo', '-n'] if shutil.which('sudo') else None)
        if sudo is not None:
            print('Fashion-MNIST: installing the Debian package dataset-fashion-mnist')
            if subprocess.call(sudo + ['apt-get', 'install', '-y', '-q', 'dataset-fashion-mnist']) != 0:
                subprocess.call(sudo + ['apt-get', 'update', '-q']); subprocess.call(sudo + ['apt-get', 'install', '-y', '-q', 'dataset-fashion-mnist'])
    try: return print(f"Fashion-MNIST: {resolve_source('auto')}")
    except LookbenchError: pass
    dest = SOURCE_CANDIDATES[-1]
    print(f'Fashion-MNIST: apt is not available; downloading the idx files into {dest}')
    try: download_fashion_mnist(dest)
    except LookbenchError as e: sys.exit(f'error: {e}')
    print(f"Fashion-MNIST: {resolve_source('auto')}")

if __name__ == '__main__': main()
