"""The package's layout holds: layered imports (pyproject's import-linter contracts), at most six
floors of imports, no module over 350 lines, a train.py under 300 and a main.py under 80."""

import ast
import functools
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).parent.parent
PACKAGE = ROOT / 'lfw_siamese'


def _module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix('').parts)
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def import_graph() -> dict[str, set[str]]:
  """Each module of the package -> the package modules it imports (at any depth of its code)."""
  modules = {_module_name(path): path for path in PACKAGE.rglob('*.py')}
  graph = {}
  for name, path in modules.items():
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        imported |= {alias.name for alias in node.names}
      elif isinstance(node, ast.ImportFrom) and node.module:
        imported |= {f'{node.module}.{alias.name}' if f'{node.module}.{alias.name}' in modules
                     else node.module for alias in node.names}
    graph[name] = {m for m in imported if m in modules and m not in (name, 'lfw_siamese')}
  return graph


def floors(graph: dict[str, set[str]]) -> dict[str, int]:
  """1 for a module that imports none of the package's, else 1 + the highest floor it imports."""

  @functools.lru_cache(maxsize=None)
  def floor(name: str, path: tuple[str, ...] = ()) -> int:
    assert name not in path, f'import circle: {" -> ".join(path + (name,))}'
    return 1 + max((floor(m, path + (name,)) for m in graph[name]), default=0)

  return {name: floor(name) for name in graph}


def test_floors_are_counted_and_circles_found():
  graph = {'a': {'b'}, 'b': {'c'}, 'c': set(), 'd': {'a', 'c'}}
  assert floors(graph) == {'a': 3, 'b': 2, 'c': 1, 'd': 4}
  graph['c'] = {'a'}
  try:
    floors(graph)
  except AssertionError as error:
    assert 'import circle' in str(error)
  else:
    raise AssertionError('a circle went unnoticed')


def test_at_most_six_floors_and_no_circle():
  highest = max(floors(import_graph()).items(), key=lambda item: item[1])
  assert highest[1] <= 6, highest


def test_module_sizes():
  sizes = {_module_name(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob('*.py')}
  assert max(sizes.values()) <= 350, max(sizes.items(), key=lambda item: item[1])
  assert sizes['lfw_siamese.train'] < 300 and sizes['lfw_siamese.main'] < 80


def test_import_contracts_are_kept():
  lint_imports = shutil.which('lint-imports', path=str(pathlib.Path(sys.executable).parent))
  assert lint_imports, 'lint-imports not found beside this Python: pip install -e .[test]'
  result = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
  assert 'Contracts: 2 kept, 0 broken.' in result.stdout
