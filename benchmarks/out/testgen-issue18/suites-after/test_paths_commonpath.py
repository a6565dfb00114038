import genericpath
import os
import pytest
import stat
import sys
from genericpath import *
from paths import commonpath


def test_commonpath_empty():
    with pytest.raises(ValueError):
        commonpath([])


def test_commonpath_single_path():
    """Test commonpath with a single path."""
    paths = ['path/to/file']
    assert commonpath(paths) == 'path/to/file'


def test_commonpath_equal_to():
    """Test commonpath with an equal path."""
    paths = ['path/to/file', 'path/to/file']
    assert commonpath(paths) == 'path/to/file'


def test_commonpath_absolute_path():
    """Test commonpath with an absolute path."""
    paths = ['/path/to/file']
    assert commonpath(paths) == '/path/to/file'
