import pytest
from topo import TopologicalSorter


def test_topological_sort_1():
    with pytest.raises(TypeError):
        TopologicalSorter.static_order()
