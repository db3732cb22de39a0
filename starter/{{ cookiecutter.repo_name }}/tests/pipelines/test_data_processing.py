from {{ cookiecutter.python_package }}.pipelines.data_processing.nodes import split_data


def test_split_keeps_every_row_once_and_the_class_balance(iris, parameters):
    train_set, test_set = split_data(iris, parameters["target"], parameters["split_options"])

    assert len(train_set) + len(test_set) == len(iris)
    assert not set(train_set.index) & set(test_set.index)
    assert len(test_set) == round(len(iris) * parameters["split_options"]["test_size"])
    counts = test_set[parameters["target"]].value_counts()
    assert counts.max() - counts.min() <= 1, counts


def test_split_is_reproducible(iris, parameters):
    first, _ = split_data(iris, parameters["target"], parameters["split_options"])
    again, _ = split_data(iris, parameters["target"], parameters["split_options"])
    assert first.equals(again)
