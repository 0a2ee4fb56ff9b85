"""`make up` on a .var/ written when all services shared one database moves that data aside, whole."""

import devstack.__main__ as devstack


def test_data_from_the_shared_database_is_moved_aside_not_lost(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(devstack, "VAR", tmp_path)
    (tmp_path / "data" / "mongo").mkdir(parents=True)
    (tmp_path / "data" / "mongo" / "WiredTiger").write_text("old")
    (tmp_path / "demo-credentials.tsv").write_text("login\tsecret\twho\n")

    devstack._set_aside_old_data()

    aside = next(tmp_path.glob("data-shared-database-*"))
    assert (aside / "mongo" / "WiredTiger").read_text() == "old"
    assert (aside / "demo-credentials.tsv").exists() and not (tmp_path / "demo-credentials.tsv").exists()
    assert (tmp_path / "data" / "layout").read_text().strip() == str(devstack.LAYOUT)
    assert str(aside) in capsys.readouterr().err

    (tmp_path / "data" / "kafka").mkdir()
    devstack._set_aside_old_data()  # data of the current layout stays where it is
    assert len(list(tmp_path.glob("data-shared-database-*"))) == 1 and (tmp_path / "data" / "kafka").exists()
