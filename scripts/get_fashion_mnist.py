"""Make sure Fashion-MNIST is on this machine: the Debian package when apt works, else the official download."""
import os
import shutil
import subprocess
import sys

from lookbench.data import SOURCE_CANDIDATES, download_fashion_mnist, resolve_source
from lookbench.warehouse import LookbenchError

PACKAGE = 'dataset-fashion-mnist'


def found()->bool:
    "Print where Fashion-MNIST is, if it is anywhere lookbench looks"
    try:
        print(f"Fashion-MNIST: {resolve_source('auto')}")
        return True
    except LookbenchError:
        return False


def apt_install():
    "Install the Debian package when apt is here and we may use it (root, or passwordless sudo)"
    if not shutil.which('apt-get'):
        return
    sudo = [] if os.geteuid() == 0 else (['sudo', '-n'] if shutil.which('sudo') else None)
    if sudo is None:
        return
    print(f'Fashion-MNIST: installing the Debian package {PACKAGE}')
    if subprocess.call(sudo + ['apt-get', 'install', '-y', '-q', PACKAGE]) != 0:
        subprocess.call(sudo + ['apt-get', 'update', '-q'])  # a fresh machine may have no package lists yet
        subprocess.call(sudo + ['apt-get', 'install', '-y', '-q', PACKAGE])


def main():
    if found():
        return
    apt_install()
    if found():
        return
    dest = SOURCE_CANDIDATES[-1]
    print(f'Fashion-MNIST: apt is not available; downloading the idx files into {dest}')
    try:
        download_fashion_mnist(dest)
    except LookbenchError as e:
        sys.exit(f'error: {e}')
    found()


if __name__ == '__main__':
    main()
